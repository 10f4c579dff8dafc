"""Settings: msgspec Structs loaded from an optional TOML file and the environment.

Precedence, lowest first: defaults, the TOML file, ``MM_BRONZE_<SECTION>_<KEY>`` variables,
the original mm_bronze variable names (``POSTGRES_DSN``, ``RAW_STORAGE_URL``, ...).
Unknown keys and bad values are errors that name the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from mm_bronze.errors import ConfigError

MiB = 1024 * 1024


class HttpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 100 * MiB
    inline_limit: int = 256 * 1024  # larger bodies travel by claim check (staging)


class PostgresSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dsn: str = ""  # empty: embedded PostgreSQL under <data_dir>/pg
    min_size: int = 2
    max_size: int = 10


class StorageSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = ""  # empty: file://<data_dir>/raw
    staging_url: str = ""  # empty: <url>/_staging
    path_template: str = "{format}/{content_type}/{version}/{subtype}/date={date}/{sha256}{ext}"
    options: dict[str, Any] = msgspec.field(default_factory=dict)


class KafkaSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    servers: str = ""  # empty: the embedded PostgreSQL-backed queue is the bus
    api_topic: str = "bronze-ingest-api"
    api_group: str = "bronze-storage-api"
    sftp_topic: str = "bronze-ingest-sftp"
    sftp_group: str = "bronze-storage-sftp"
    max_message_size: int = 10 * MiB
    compression_type: str = "none"


class ConsumerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    concurrency: int = 2  # pipelines per topic in one process
    batch_size: int = 100
    max_attempts: int = 5
    lease_seconds: float = 30.0
    retry_backoff_max: float = 30.0


class SftpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 2222
    max_file_size: int = 1024 * MiB
    users: str = ""


class ValidationSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: str = "strict"  # strict | lenient; a request may override it (?validation=)


class LogSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: str = "info"
    format: str = "auto"  # auto | json | console


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./data"
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    postgres: PostgresSettings = msgspec.field(default_factory=PostgresSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    consumer: ConsumerSettings = msgspec.field(default_factory=ConsumerSettings)
    sftp: SftpSettings = msgspec.field(default_factory=SftpSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    validation: ValidationSettings = msgspec.field(default_factory=ValidationSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def storage_url(self) -> str:
        return self.storage.url or (self.data_path / "raw").as_uri()

    @property
    def staging_url(self) -> str:
        return self.storage.staging_url or self.storage_url.rstrip("/") + "/_staging"


# The original mm_bronze's environment names, kept so its users can move over.
LEGACY_ENV: dict[str, tuple[str, str]] = {
    "POSTGRES_DSN": ("postgres", "dsn"),
    "DB_MIN_SIZE": ("postgres", "min_size"),
    "DB_MAX_SIZE": ("postgres", "max_size"),
    "RAW_STORAGE_URL": ("storage", "url"),
    "API_MAX_FILE_SIZE": ("http", "max_body_bytes"),
    "KAFKA_SERVERS": ("kafka", "servers"),
    "KAFKA_BRONZE_API_TOPIC": ("kafka", "api_topic"),
    "KAFKA_BRONZE_API_GROUP": ("kafka", "api_group"),
    "KAFKA_BRONZE_SFTP_TOPIC": ("kafka", "sftp_topic"),
    "KAFKA_BRONZE_SFTP_GROUP": ("kafka", "sftp_group"),
    "KAFKA_MAX_MESSAGE_SIZE": ("kafka", "max_message_size"),
    "KAFKA_COMPRESSION_TYPE": ("kafka", "compression_type"),
    "SFTP_HOST": ("sftp", "host"),
    "SFTP_PORT": ("sftp", "port"),
    "SFTP_MAX_FILE_SIZE": ("sftp", "max_file_size"),
    "SFTP_USERS": ("sftp", "users"),
}

ENV_PREFIX = "MM_BRONZE_"
# MM_BRONZE_* variables that are not settings.
_NOT_SETTINGS = ("MM_BRONZE_CONFIG", "MM_BRONZE_TEST_")
SECRET_KEYS = {("postgres", "dsn"), ("sftp", "users"), ("storage", "options")}
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("kafka", "compression_type"): ("none", "gzip", "snappy", "lz4", "zstd"),
    ("log", "format"): ("auto", "json", "console"),
    ("log", "level"): ("debug", "info", "warning", "error"),
    ("validation", "level"): ("strict", "lenient"),
}


def _sections() -> dict[str, type[msgspec.Struct]]:
    return {
        f.name: f.type
        for f in msgspec.structs.fields(Settings)
        if isinstance(f.type, type) and issubclass(f.type, msgspec.Struct)
    }


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    sections = _sections()
    known: dict[str, tuple[str, str] | tuple[str]] = {f"{ENV_PREFIX}DATA_DIR": ("data_dir",)}
    for section, struct in sections.items():
        for field in msgspec.structs.fields(struct):
            known[env_name(section, field.name)] = (section, field.name)
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(_NOT_SETTINGS):
            continue
        path = known.get(name)
        if path is None:
            raise ConfigError(f"unknown setting in environment: {name}")
        _assign(out, path, _env_value(value))
    for name, path in LEGACY_ENV.items():
        if name in environ:
            _assign(out, path, environ[name])
    return out


def _env_value(value: str) -> Any:
    stripped = value.strip()
    if stripped.startswith(("{", "[")):
        try:
            return msgspec.json.decode(stripped)
        except msgspec.DecodeError:
            return value
    return value


def _assign(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the effective settings; raises ``ConfigError`` naming the offending key."""
    environ = os.environ if environ is None else environ
    config_path = config_path or environ.get("MM_BRONZE_CONFIG") or None
    data: dict[str, Any] = {}
    if config_path:
        path = Path(config_path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    data = _merge(data, _env_overrides(environ))
    if overrides:
        data = _merge(data, overrides)
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {_explain(str(exc))}") from exc
    _check(settings)
    return settings


def _explain(message: str) -> str:
    # msgspec says "... - at `$.http.port`"; name the key and its environment variable too.
    if " - at `$." in message:
        text, _, where = message.partition(" - at `$.")
        key = where.rstrip("`")
        parts = key.split(".")
        env = env_name(*parts) if len(parts) == 2 else ENV_PREFIX + key.upper()
        return f"{key} ({env}): {text}"
    if "Object contains unknown field" in message:
        return message.replace("Object contains unknown field", "unknown key")
    return message


def _check(settings: Settings) -> None:
    for (section, key), allowed in CHOICES.items():
        value = getattr(getattr(settings, section), key)
        if value not in allowed:
            raise ConfigError(
                f"invalid setting: {section}.{key} ({env_name(section, key)}): "
                f"{value!r} is not one of {', '.join(allowed)}"
            )
    positive = [
        ("http", "port"),
        ("http", "max_body_bytes"),
        ("http", "inline_limit"),
        ("postgres", "min_size"),
        ("postgres", "max_size"),
        ("kafka", "max_message_size"),
        ("consumer", "concurrency"),
        ("consumer", "batch_size"),
        ("consumer", "max_attempts"),
        ("consumer", "lease_seconds"),
        ("sftp", "max_file_size"),
    ]
    for section, key in positive:
        if getattr(getattr(settings, section), key) <= 0:
            raise ConfigError(
                f"invalid setting: {section}.{key} ({env_name(section, key)}) must be positive"
            )
    for section in ("http", "sftp"):
        port = getattr(settings, section).port
        if not 0 < port < 65536:
            raise ConfigError(f"invalid setting: {section}.port must be between 1 and 65535")


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, secrets replaced by ``"***"``."""
    data: dict[str, Any] = msgspec.to_builtins(settings)
    for section, key in SECRET_KEYS:
        value = data[section][key]
        if value and section == "postgres":
            data[section][key] = _redact_dsn(value)
        elif value:
            data[section][key] = "***"
    data["effective"] = {"storage_url": settings.storage_url, "staging_url": settings.staging_url}
    return data


def _redact_dsn(dsn: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    if "password=" in dsn:
        return " ".join("password=***" if p.startswith("password=") else p for p in dsn.split())
    return dsn
