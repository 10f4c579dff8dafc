"""The jail check gives ``os.path.realpath``'s answer on real trees with links in them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mm_bronze.ingest.sftp.jail import resolves_inside


def realpath_inside(home: bytes, local: bytes) -> bool:
    real = os.path.realpath(local)
    return real == home or real.startswith(home + b"/")


@pytest.fixture
def tree(tmp_path: Path) -> tuple[bytes, Path]:
    """A home with a file, a directory, links that stay inside and links that leave it."""
    outside = tmp_path / "outside"
    (outside / "deep").mkdir(parents=True)
    home = tmp_path / "home"
    (home / "dir" / "sub").mkdir(parents=True)
    (home / "file.txt").write_text("x")
    (home / "dir" / "inner-link").symlink_to(home / "dir" / "sub")
    (home / "dir" / "out-link").symlink_to(outside)
    (home / "relative-out").symlink_to("../outside/deep")
    (home / "loop").symlink_to(home / "loop")
    return os.fsencode(home), home


NAMES = ["dir", "sub", "file.txt", "inner-link", "out-link", "relative-out", "loop", "new"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(NAMES), max_size=4))
def test_same_answer_as_realpath(tree: tuple[bytes, Path], parts: list[str]) -> None:
    home, _ = tree
    local = b"/".join([home, *(os.fsencode(p) for p in parts)])
    assert resolves_inside(home, local) == realpath_inside(home, local), local


def test_links_out_are_refused_and_links_in_are_not(tree: tuple[bytes, Path]) -> None:
    home, _ = tree
    assert resolves_inside(home, home)
    assert resolves_inside(home, home + b"/")  # the root, as asyncssh maps "/"
    assert resolves_inside(home, home + b"/dir/inner-link/new.json")
    assert resolves_inside(home, home + b"/missing/new.json")
    assert not resolves_inside(home, home + b"/dir/out-link")
    assert not resolves_inside(home, home + b"/dir/out-link/new.json")
    assert not resolves_inside(home, home + b"/relative-out/new.json")
    assert not resolves_inside(home, home + b"x/sibling.json")  # a sibling sharing a prefix


def test_a_home_replaced_by_a_link_is_left(tmp_path: Path) -> None:
    """The home was resolved when the session started: a link put in its place later leads
    elsewhere, and is refused."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    home = tmp_path / "home"
    home.symlink_to(elsewhere)
    assert not resolves_inside(os.fsencode(home), os.fsencode(home / "new.json"))
