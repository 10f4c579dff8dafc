"""Settings: defaults, TOML, environment (incl. the original mm_bronze names), clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mm_bronze.errors import ConfigError
from mm_bronze.settings import load_settings, redacted
from tests.services.mm_bronze import run_cli


def test_defaults_are_embedded() -> None:
    settings = load_settings(environ={})
    assert settings.postgres.dsn == ""
    assert settings.kafka.servers == ""
    assert settings.http.host == "127.0.0.1"
    assert settings.http.port == 8000
    assert settings.storage_url == (settings.data_path / "raw").as_uri()


def test_original_environment_names_are_honoured() -> None:
    settings = load_settings(
        environ={
            "POSTGRES_DSN": "postgresql://meta_user:meta_pass@db:5432/metadata",
            "RAW_STORAGE_URL": "s3://bucket/raw",
            "API_MAX_FILE_SIZE": "1048576",
            "KAFKA_SERVERS": "kafka:9092",
            "KAFKA_BRONZE_API_TOPIC": "api-topic",
            "KAFKA_BRONZE_API_GROUP": "api-group",
            "KAFKA_BRONZE_SFTP_TOPIC": "sftp-topic",
            "KAFKA_BRONZE_SFTP_GROUP": "sftp-group",
            "KAFKA_MAX_MESSAGE_SIZE": "8388608",
            "KAFKA_COMPRESSION_TYPE": "lz4",
            "SFTP_PORT": "2022",
            "SFTP_MAX_FILE_SIZE": "2048",
            "SFTP_USERS": "alice:secret:read+write",
        }
    )
    assert settings.postgres.dsn.endswith("@db:5432/metadata")
    assert settings.storage_url == "s3://bucket/raw"
    assert settings.http.max_body_bytes == 1048576
    assert settings.kafka.servers == "kafka:9092"
    assert (settings.kafka.api_topic, settings.kafka.api_group) == ("api-topic", "api-group")
    assert (settings.kafka.sftp_topic, settings.kafka.sftp_group) == ("sftp-topic", "sftp-group")
    assert settings.kafka.max_message_size == 8388608
    assert settings.kafka.compression_type == "lz4"
    assert settings.sftp.port == 2022
    assert settings.sftp.max_file_size == 2048
    assert settings.sftp.users == "alice:secret:read+write"


def test_toml_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "mm-bronze.toml"
    config.write_text('data_dir = "/srv/bronze"\n[http]\nport = 9000\nhost = "0.0.0.0"\n')
    settings = load_settings(config, environ={"MM_BRONZE_HTTP_PORT": "9100"})
    assert settings.data_dir == "/srv/bronze"
    assert settings.http.host == "0.0.0.0"
    assert settings.http.port == 9100


def test_unknown_environment_key_names_it() -> None:
    with pytest.raises(ConfigError, match="MM_BRONZE_HTTP_PROT"):
        load_settings(environ={"MM_BRONZE_HTTP_PROT": "1"})


def test_unknown_toml_key_names_it(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[http]\nprot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(config, environ={})


def test_bad_value_names_key_and_variable() -> None:
    with pytest.raises(ConfigError, match=r"http.max_body_bytes \(MM_BRONZE_HTTP_MAX_BODY_BYTES\)"):
        load_settings(environ={"API_MAX_FILE_SIZE": "lots"})
    with pytest.raises(ConfigError, match="compression_type"):
        load_settings(environ={"KAFKA_COMPRESSION_TYPE": "brotli"})


def test_secrets_are_redacted() -> None:
    settings = load_settings(
        environ={"POSTGRES_DSN": "postgresql://u:hunter2@db/metadata", "SFTP_USERS": "a:pw:read"}
    )
    shown = redacted(settings)
    assert "hunter2" not in repr(shown)
    assert shown["postgres"]["dsn"] == "postgresql://u:***@db/metadata"
    assert shown["sftp"]["users"] == "***"


def test_cli_refuses_to_start_on_unknown_key(tmp_path: Path) -> None:
    result = run_cli(
        "serve", "--all", "--data-dir", str(tmp_path), env={"MM_BRONZE_CONSUMER_BATCHSIZE": "5"}
    )
    assert result.returncode == 2
    assert "MM_BRONZE_CONSUMER_BATCHSIZE" in result.stderr


def test_cli_config_prints_redacted_effective_config(tmp_path: Path) -> None:
    result = run_cli(
        "config",
        "--data-dir",
        str(tmp_path),
        env={"POSTGRES_DSN": "postgresql://u:hunter2@db/metadata"},
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert '"dsn": "postgresql://u:***@db/metadata"' in result.stdout
