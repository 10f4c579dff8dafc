"""Settings: defaults, TOML, environment (incl. the original mm_bronze names), clear errors."""

from __future__ import annotations

import json
import socket
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


def test_bad_value_is_reported_under_the_name_the_user_set() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"API_MAX_FILE_SIZE": "10MB"})
    assert str(caught.value) == (
        "invalid setting API_MAX_FILE_SIZE=10MB (http.max_body_bytes): "
        "expected a whole number of bytes"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"SFTP_PORT": "x"})
    assert str(caught.value).startswith("invalid setting SFTP_PORT=x (sftp.port): expected")
    assert "Expected" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"MM_BRONZE_KAFKA_PUBLISH_TIMEOUT=soon .*seconds"):
        load_settings(environ={"MM_BRONZE_KAFKA_PUBLISH_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match=r"KAFKA_COMPRESSION_TYPE=brotli .*one of none, gzip"):
        load_settings(environ={"KAFKA_COMPRESSION_TYPE": "brotli"})
    with pytest.raises(ConfigError, match=r"MM_BRONZE_MLLP_ALLOWED_PEERS=10.0.0.1 .*a list"):
        load_settings(environ={"MM_BRONZE_MLLP_ALLOWED_PEERS": "10.0.0.1"})
    # A secret's value is never echoed.
    with pytest.raises(ConfigError, match=r"MM_BRONZE_POSTGRES_DSN \(postgres.dsn\): expected a"):
        load_settings(environ={"MM_BRONZE_POSTGRES_DSN": '["hunter2"]'})


def test_sftp_ciphers_must_be_ciphers_the_server_implements() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"MM_BRONZE_SFTP_CIPHERS": '["aes128-gcm@openssh.com", "rot13"]'})
    assert str(caught.value).startswith(
        'invalid setting MM_BRONZE_SFTP_CIPHERS=["aes128-gcm@openssh.com", "rot13"]'
        " (sftp.ciphers): 'rot13' is not a cipher this server implements; expected some of "
        "chacha20-poly1305@openssh.com, aes256-gcm@openssh.com,"
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"MM_BRONZE_SFTP_CIPHERS": "[]"})
    assert str(caught.value) == (
        "invalid setting MM_BRONZE_SFTP_CIPHERS=[] (sftp.ciphers): expected at least one cipher"
    )
    chosen = load_settings(environ={"MM_BRONZE_SFTP_CIPHERS": '["chacha20-poly1305@openssh.com"]'})
    assert chosen.sftp.ciphers == ["chacha20-poly1305@openssh.com"]


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"MM_BRONZE_HTTP_TLS_CERT": "/etc/cert.pem"},
            "invalid setting: http.tls_cert and http.tls_key must be set together",
        ),
        (
            {"MM_BRONZE_HTTP_TLS_KEY": "/etc/key.pem"},
            "invalid setting: http.tls_cert and http.tls_key must be set together",
        ),
        (
            {"MM_BRONZE_HTTP_TLS_CLIENT_CA": "/etc/ca.pem"},
            "invalid setting: http.tls_client_ca needs http.tls_cert and tls_key",
        ),
    ],
)
def test_http_tls_halves_are_refused_when_settings_load(
    environ: dict[str, str], message: str
) -> None:
    """Refused when settings load, as MLLP's are, so `config` and `doctor` refuse what
    `serve --http` would (they passed it before)."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert str(caught.value) == message


def test_bad_value_in_the_file_or_a_flag_names_that(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[sftp]\nport = "x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert str(caught.value) == (
        f'invalid setting sftp.port = "x" in {config}: expected a whole number from 1 to 65535'
    )
    with pytest.raises(ConfigError, match=r"^invalid setting --mllp-port 0 \(mllp.port\)"):
        load_settings(
            environ={},
            overrides={"mllp": {"port": 0}},
            override_labels={("mllp", "port"): "--mllp-port 0"},
        )


def test_typos_suggest_the_closest_known_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[http]\nprot = 8001\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert (
        str(caught.value)
        == f"unknown key 'prot' in section [http] of {config} (did you mean 'port'?)"
    )
    config.write_text("[htpp]\nport = 8001\n")
    with pytest.raises(ConfigError, match=r"unknown key 'htpp' .*did you mean 'http'"):
        load_settings(config, environ={})
    with pytest.raises(ConfigError, match=r"did you mean MM_BRONZE_CONSUMER_BATCH_SIZE\?"):
        load_settings(environ={"MM_BRONZE_CONSUMER_BATCHSIZE": "5"})


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
    data = tmp_path.resolve()
    assert json.loads(result.stdout)["effective"] == {
        "storage_url": (data / "raw").as_uri(),
        "staging_url": (data / "raw").as_uri() + "/_staging",
        "data_dir": str(data),
        "postgres": "postgresql://u:***@db/metadata",
        "users_file": str(data / "sftp" / "users.json"),
        "host_key_path": str(data / "sftp" / "ssh_host_ed25519_key"),
    }
    embedded = json.loads(run_cli("config", "--data-dir", str(tmp_path)).stdout)["effective"]
    assert embedded["postgres"] == f"embedded, {data / 'pg'}"


def test_metrics_port_is_off_by_default_and_checked() -> None:
    settings = load_settings(environ={})
    assert (settings.metrics.host, settings.metrics.port) == ("127.0.0.1", 0)
    assert load_settings(environ={"MM_BRONZE_METRICS_PORT": "9100"}).metrics.port == 9100
    for bad in ("-1", "70000"):
        with pytest.raises(ConfigError) as caught:
            load_settings(environ={"MM_BRONZE_METRICS_PORT": bad})
        assert str(caught.value) == (
            f"invalid setting MM_BRONZE_METRICS_PORT={bad} (metrics.port): "
            "expected a port number from 1 to 65535, or 0 for no metrics server"
        )


@pytest.mark.parametrize(
    ("variable", "name"),
    [
        ("MM_BRONZE_CONSUMER_STOP_GRACE", "consumer.stop_grace"),
        ("MM_BRONZE_HTTP_GRACEFUL_TIMEOUT", "http.graceful_timeout"),
        ("MM_BRONZE_STORAGE_STAGING_TIMEOUT", "storage.staging_timeout"),
    ],
)
def test_a_stop_or_storage_deadline_must_be_above_zero(variable: str, name: str) -> None:
    assert load_settings(environ={variable: "2.5"})  # a fraction of a second is fine
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: "0"})
    assert str(caught.value) == f"invalid setting {variable}=0 ({name}): expected a number above 0"


@pytest.mark.parametrize("door", ["http", "mllp"])
def test_reuse_port_is_true_or_false_and_needs_so_reuseport(
    door: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    variable = f"MM_BRONZE_{door.upper()}_REUSE_PORT"
    assert getattr(load_settings(environ={variable: "true"}), door).reuse_port is True
    assert getattr(load_settings(environ={}), door).reuse_port is False
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: "yes"})
    assert str(caught.value) == (
        f"invalid setting {variable}=yes ({door}.reuse_port): expected true or false"
    )
    monkeypatch.delattr(socket, "SO_REUSEPORT")  # as on a system without it (Windows)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: "true"})
    assert str(caught.value) == (
        f"invalid setting {variable}=true ({door}.reuse_port): this system has no SO_REUSEPORT"
    )
    assert load_settings(environ={}) is not None  # the default asks nothing of the system
