"""The example configuration is generated from the settings: every key, with its default."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import msgspec

from mm_bronze.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "mm-bronze.example.toml"
GENERATOR = ROOT / "tools" / "generate_example_config.py"


def test_example_config_loads_and_matches_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == load_settings(environ={})


def test_example_config_lists_every_setting_with_its_default() -> None:
    written = tomllib.loads(EXAMPLE.read_text())
    assert written == msgspec.to_builtins(Settings())


def test_example_config_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("generate_example_config", GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert EXAMPLE.read_text() == generator.render(), (
        "config/mm-bronze.example.toml is stale: run python tools/generate_example_config.py"
    )
