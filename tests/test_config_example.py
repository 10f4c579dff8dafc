"""The example configuration file is valid and states the defaults."""

from __future__ import annotations

from pathlib import Path

from mm_bronze.settings import load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "mm-bronze.example.toml"


def test_example_config_loads_and_matches_defaults() -> None:
    assert load_settings(EXAMPLE, environ={}) == load_settings(environ={})
