"""The example deployment configuration stays a valid mm-bronze configuration."""

from __future__ import annotations

from pathlib import Path

from mm_bronze.settings import load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_env_is_a_valid_kafka_configuration() -> None:
    env = {}
    for line in (ROOT / "config" / "compose.env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    settings = load_settings(environ=env)
    assert settings.kafka.servers == "kafka:9092"
    assert settings.postgres.dsn.startswith("postgresql://")
    assert settings.storage_url.startswith("s3://")
    assert settings.http.host == "0.0.0.0"
