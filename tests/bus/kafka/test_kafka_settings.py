"""Kafka settings that cannot work are refused at start, with the key named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mm_bronze.errors import ConfigError
from mm_bronze.settings import load_settings
from tests.services.mm_bronze import free_port, run_cli


def test_inline_limit_must_fit_in_a_kafka_message() -> None:
    env = {"KAFKA_SERVERS": "127.0.0.1:9092", "KAFKA_MAX_MESSAGE_SIZE": "262144"}
    with pytest.raises(ConfigError, match=r"http\.inline_limit"):
        load_settings(environ=env)
    with pytest.raises(ConfigError, match=r"mllp\.inline_limit"):
        load_settings(environ={**env, "MM_BRONZE_HTTP_INLINE_LIMIT": "131072"})
    small = {"MM_BRONZE_HTTP_INLINE_LIMIT": "131072", "MM_BRONZE_MLLP_INLINE_LIMIT": "131072"}
    with pytest.raises(ConfigError, match=r"sftp\.inline_limit"):
        load_settings(environ={**env, **small})
    fits = load_settings(
        environ={
            **env,
            "MM_BRONZE_HTTP_INLINE_LIMIT": "131072",
            "MM_BRONZE_MLLP_INLINE_LIMIT": "131072",
            "MM_BRONZE_SFTP_INLINE_LIMIT": "131072",
        }
    )
    assert fits.http.inline_limit == 131072
    # Without Kafka the embedded queue has no such limit.
    assert load_settings(environ={"KAFKA_MAX_MESSAGE_SIZE": "1048576"}).kafka.servers == ""


def test_options_may_not_weaken_delivery() -> None:
    env = {"KAFKA_SERVERS": "127.0.0.1:9092", "MM_BRONZE_KAFKA_OPTIONS": '{"acks": "1"}'}
    with pytest.raises(ConfigError, match="acks"):
        load_settings(environ=env)


def test_options_are_passed_through_and_kept_secret(tmp_path: Path) -> None:
    env = {
        "KAFKA_SERVERS": "127.0.0.1:9092",
        "MM_BRONZE_KAFKA_OPTIONS": '{"security.protocol": "SASL_SSL", "sasl.password": "s3cret"}',
    }
    settings = load_settings(environ=env)
    assert settings.kafka.options["security.protocol"] == "SASL_SSL"
    shown = run_cli("config", "--data-dir", str(tmp_path), env=env)
    assert shown.returncode == 0, shown.stderr
    assert "s3cret" not in shown.stdout


def test_unknown_librdkafka_option_is_a_configuration_error(tmp_path: Path, dsn: str) -> None:
    env = {
        "POSTGRES_DSN": dsn,
        "KAFKA_SERVERS": "127.0.0.1:9",
        "MM_BRONZE_KAFKA_OPTIONS": '{"no.such.property": "1"}',
    }
    result = run_cli("serve", "--consumers", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 2, result.stderr
    assert "no.such.property" in result.stderr


def test_an_unreachable_broker_is_one_json_log_and_a_line_that_names_it(
    tmp_path: Path, dsn: str
) -> None:
    """librdkafka's own lines (``%3|...|FAIL|...``) went to stderr raw, 195 of them, past the
    JSON logs; they now go through logging, and the last line names the broker."""
    port = free_port()  # nothing listens there
    env = {
        "POSTGRES_DSN": dsn,
        "KAFKA_SERVERS": f"127.0.0.1:{port}",
        "MM_BRONZE_LOG_FORMAT": "json",
    }
    result = run_cli("serve", "--consumers", "--data-dir", str(tmp_path), env=env)
    assert result.returncode == 1, result.stderr
    *logs, last = [line for line in result.stderr.splitlines() if line.strip()]
    for line in logs:
        json.loads(line)  # every line but the last is a JSON log line
    assert last.startswith("mm-bronze: error: ")
    assert f"127.0.0.1:{port}" in last
