"""Settings: msgspec Structs loaded from an optional TOML file and the environment.

Precedence, lowest first: defaults, the TOML file, ``MM_BRONZE_<SECTION>_<KEY>`` variables,
the original mm_bronze variable names (``POSTGRES_DSN``, ``RAW_STORAGE_URL``, ...).
Unknown keys and bad values are errors that name the key.
"""

from __future__ import annotations

import difflib
import os
import socket
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from mm_bronze.errors import ConfigError

MiB = 1024 * 1024


class HttpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 100 * MiB  # largest accepted body, checked while reading
    inline_limit: int = 256 * 1024  # larger bodies travel by claim check (staging)
    validation_workers: int = -1  # processes checking bodies of 64 KiB+; -1: one per core, 0: none
    body_timeout: float = 30.0  # seconds a request body may go without a byte before a 408
    graceful_timeout: float = 30.0  # seconds requests in flight at a stop may take; then 503
    max_buffered_bytes: int = 256 * MiB  # request-body bytes all requests may hold in memory
    tls_cert: str = ""  # PEM certificate (chain); set with tls_key to serve HTTPS
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA bundle: when set, clients must present a certificate
    reuse_port: bool = False  # SO_REUSEPORT: several serve --http processes share the port


class PostgresSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dsn: str = ""  # empty: embedded PostgreSQL under <data_dir>/pg
    min_size: int = 2  # connections opened at start
    max_size: int = 10  # connection pool limit


class StorageSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    url: str = ""  # empty: file://<data_dir>/raw
    staging_url: str = ""  # empty: <url>/_staging
    path_template: str = "{format}/{content_type}/{version}/{subtype}/date={date}/{sha256}{ext}"
    options: dict[str, Any] = msgspec.field(default_factory=dict)  # fsspec: credentials, endpoint
    compression: str = "none"  # none | gzip | zstd, for raw objects
    staging_timeout: float = 30.0  # seconds a door waits for one remote staging call: then 503


class KafkaSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    servers: str = ""  # empty: the embedded PostgreSQL-backed queue is the bus
    api_topic: str = "bronze-ingest-api"
    api_group: str = "bronze-storage-api"
    sftp_topic: str = "bronze-ingest-sftp"
    sftp_group: str = "bronze-storage-sftp"
    mllp_topic: str = "bronze-ingest-mllp"
    mllp_group: str = "bronze-storage-mllp"
    max_message_size: int = 10 * MiB  # largest event; inline limits stay 64 KiB below
    compression_type: str = "none"  # none | gzip | snappy | lz4 | zstd
    dlq_topic: str = "bronze-ingest-dlq"  # dead letters
    dlq_group: str = "bronze-dlq-replay"  # group whose committed offsets skip handled dead letters
    stored_topic: str = "bronze-stored"  # one event per recorded submission; empty: none
    partitions: int = 6  # for topics created at start
    replication_factor: int = -1  # -1: the broker's default.replication.factor
    publish_timeout: float = 10.0  # seconds before an undelivered publish fails (HTTP 503)
    session_timeout_ms: int = 45000  # how long a dead consumer keeps its partitions
    heartbeat_interval_ms: int = 3000  # keep below a third of session_timeout_ms
    lag_log_interval: float = 60.0  # seconds between consumer lag log lines
    options: dict[str, Any] = msgspec.field(default_factory=dict)  # any librdkafka setting


class ConsumerSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    concurrency: int = 2  # pipelines per topic in one process
    batch_size: int = 100  # events per batch
    # After a batch smaller than batch_size, wait this long before claiming the next: a
    # trickle of events is then stored in fewer, larger batches (fewer fsyncs). 0: no wait.
    linger: float = 0.05
    max_attempts: int = 5  # deliveries of a failing event before it is dead-lettered
    lease_seconds: float = 30.0  # embedded queue: a dead consumer's claim returns after this
    retry_backoff_max: float = 30.0  # longest pause between retries while storage or DB is down
    stop_grace: float = 30.0  # seconds a stop waits for batches in progress; then cancels them


# The SSH ciphers the SFTP door offers, by default: asyncssh's own but chacha20-poly1305.
# asyncssh builds three ChaCha20 contexts and a Poly1305 for every packet of it (14 us a
# packet here, 25 us for 32 KiB), where aes128-ctr with umac-64-etm costs 5 and 12 us, and
# AES-GCM 2.4 and 7 us; every SSH client offers AES. The client's order chooses among them.
SFTP_CIPHERS = (
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-ctr",
    "aes192-ctr",
    "aes128-ctr",
)


class SftpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 2222
    max_file_size: int = 1024 * MiB  # largest SFTP upload
    users: str = ""  # the original user:pass:perm+perm|... list; prefer `mm-bronze users`
    users_file: str = ""  # empty: <data_dir>/sftp/users.json
    host_key_path: str = ""  # empty: <data_dir>/sftp/ssh_host_ed25519_key
    # Names ingested when renamed to a final name, not when closed.
    temp_patterns: list[str] = msgspec.field(
        default_factory=lambda: ["*.tmp", "*.part", "*.filepart"]
    )
    max_concurrent_uploads_per_user: int = 16  # files one user may have open for writing
    inline_limit: int = 256 * 1024  # larger files travel by claim check (staging)
    fhir_version: str = "R4"  # recorded for FHIR files, whose content does not say
    retry_seconds: float = 30.0  # how often uploads whose publish failed are retried
    max_depth: int = 32  # directory levels below a user's home
    max_directories_per_user: int = 1000  # directories one user may create
    max_files_per_user: int = 10_000  # files one user may have in their directory at once
    max_auth_attempts: int = 6  # failed logins on one connection before it is closed
    auth_failure_delay: float = 0.5  # seconds; doubles per failure (per user and address)
    ciphers: list[str] = msgspec.field(default_factory=lambda: list(SFTP_CIPHERS))


class MllpSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 2575
    max_frame_bytes: int = 16 * MiB  # larger messages are answered AR
    inline_limit: int = 1 * MiB  # larger messages travel by claim check (staging)
    idle_timeout: float = 300.0  # seconds without a byte before a connection is closed
    max_connections: int = 256  # open connections; more are closed at once
    max_buffered_bytes: int = 256 * MiB  # unfinished frames held by all connections together
    allowed_peers: list[str] = msgspec.field(default_factory=list)  # CIDRs; empty: any
    tls_cert: str = ""  # PEM certificate (chain); set with tls_key to serve MLLP over TLS
    tls_key: str = ""
    tls_client_ca: str = ""  # PEM CA bundle: when set, clients must present a certificate
    tls_client_fingerprints: list[str] = msgspec.field(default_factory=list)  # SHA-256, hex
    reuse_port: bool = False  # SO_REUSEPORT: several serve --mllp processes share the port


class ValidationSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: str = "strict"  # strict | lenient; a request may override it (?validation=)


class LogSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    level: str = "info"  # debug | info | warning | error
    format: str = "auto"  # auto | json | console


class MetricsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    host: str = "127.0.0.1"  # address of the metrics server (no authentication)
    port: int = 0  # GET /metrics on its own port; 0: off (the HTTP door serves /metrics)


class Settings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    data_dir: str = "./data"
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)
    postgres: PostgresSettings = msgspec.field(default_factory=PostgresSettings)
    storage: StorageSettings = msgspec.field(default_factory=StorageSettings)
    kafka: KafkaSettings = msgspec.field(default_factory=KafkaSettings)
    consumer: ConsumerSettings = msgspec.field(default_factory=ConsumerSettings)
    sftp: SftpSettings = msgspec.field(default_factory=SftpSettings)
    mllp: MllpSettings = msgspec.field(default_factory=MllpSettings)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    validation: ValidationSettings = msgspec.field(default_factory=ValidationSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)

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
SECRET_KEYS = {("postgres", "dsn"), ("sftp", "users"), ("storage", "options"), ("kafka", "options")}
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("kafka", "compression_type"): ("none", "gzip", "snappy", "lz4", "zstd"),
    ("log", "format"): ("auto", "json", "console"),
    ("storage", "compression"): ("none", "gzip", "zstd"),
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


def _known_env() -> dict[str, tuple[str, ...]]:
    known: dict[str, tuple[str, ...]] = {f"{ENV_PREFIX}DATA_DIR": ("data_dir",)}
    for section, struct in _sections().items():
        for field in msgspec.structs.fields(struct):
            known[env_name(section, field.name)] = (section, field.name)
    return known


def _env_overrides(environ: Mapping[str, str], sources: Sources) -> dict[str, Any]:
    known = _known_env()
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(_NOT_SETTINGS):
            continue
        path = known.get(name)
        if path is None:
            raise ConfigError(f"unknown setting in environment: {name}{_did_you_mean(name, known)}")
        _assign(out, path, _env_value(value))
        sources[path] = _env_label(name, path, value)
    for name, legacy_path in LEGACY_ENV.items():
        if name in environ:
            _assign(out, legacy_path, environ[name])
            sources[legacy_path] = _env_label(name, legacy_path, environ[name])
    return out


def _env_label(name: str, path: tuple[str, ...], value: str) -> str:
    if tuple(path) in SECRET_KEYS:
        return name
    shown = value if len(value) <= 60 else value[:57] + "..."
    return f"{name}={shown}"


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


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


Sources = dict[tuple[str, ...], str]


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    override_labels: Mapping[tuple[str, ...], str] | None = None,
) -> Settings:
    """Build the effective settings; raises ``ConfigError`` naming what the user set.

    A bad value is reported under the name it was given by (``API_MAX_FILE_SIZE=10MB``,
    ``http.port in FILE``, or the label in ``override_labels``, e.g. ``--http-port``).
    """
    environ = os.environ if environ is None else environ
    config_path = config_path or environ.get("MM_BRONZE_CONFIG") or None
    data: dict[str, Any] = {}
    sources: Sources = {}
    if config_path:
        path = Path(config_path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"configuration file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
        _check_keys(data, path)
        for key_path, value in _leaves(data):
            shown = msgspec.json.encode(value).decode() if key_path not in SECRET_KEYS else "…"
            sources[key_path] = f"{'.'.join(key_path)} = {shown[:60]} in {path}"
    data = _merge(data, _env_overrides(environ, sources))
    if overrides:
        data = _merge(data, overrides)
        for key_path, _ in _leaves(overrides):
            label = (override_labels or {}).get(key_path)
            sources[key_path] = label or "command line " + ".".join(key_path)
    try:
        settings = msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(str(exc), sources)) from exc
    _check(settings, sources)
    return settings


def _leaves(
    data: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Any]]:
    """``(section, key)`` paths and values of a settings tree (tables like options are leaves)."""
    for key, value in data.items():
        if isinstance(value, Mapping) and not prefix and key in _sections():
            yield from _leaves(value, (key,))
        else:
            yield (*prefix, key), value


def _check_keys(data: Mapping[str, Any], path: Path) -> None:
    """Unknown keys in the TOML file, reported with the closest known key."""
    sections = _sections()
    top = [f.name for f in msgspec.structs.fields(Settings)]
    for key, value in data.items():
        if key not in top:
            raise ConfigError(f"unknown key {key!r} in {path}{_suggest(key, top)}")
        if key in sections and isinstance(value, Mapping):
            fields = [f.name for f in msgspec.structs.fields(sections[key])]
            for sub in value:
                if sub not in fields:
                    raise ConfigError(
                        f"unknown key {sub!r} in section [{key}] of {path}{_suggest(sub, fields)}"
                    )


def _suggest(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _label(sources: Sources, section: str, key: str) -> str:
    """What the user set for ``section.key``, or the key and its variable for a default."""
    given = sources.get((section, key))
    dotted = f"{section}.{key}"
    if given:
        return given if given.startswith(dotted) else f"{given} ({dotted})"
    return f"{dotted} ({env_name(section, key)})"


def _explain(message: str, sources: Sources) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.http.port`"; name what the user set.
    text, _, where = message.partition(" - at `$.")
    parts = tuple(where.rstrip("`").split(".")) if where else ()
    if "unknown field" in text:
        return "invalid setting: " + text.replace("Object contains unknown field", "unknown key")
    if len(parts) == 2:
        section, key = parts
        return f"invalid setting {_label(sources, section, key)}: {_expected(section, key, text)}"
    if parts == ("data_dir",):
        given = sources.get(parts, f"data_dir ({ENV_PREFIX}DATA_DIR)")
        return f"invalid setting {given}: expected a directory path"
    return f"invalid setting {'.'.join(parts) or ''}: {text}".replace(" :", ":")


def _expected(section: str, key: str, fallback: str) -> str:
    """Plain wording for the type a setting needs."""
    struct = _sections().get(section)
    fields = msgspec.structs.fields(struct) if struct is not None else ()
    kind = next((f.type for f in fields if f.name == key), None)
    if kind is int:
        unit = next((u for s, u in _UNITS if key.endswith(s)), "")
        return f"expected a whole number{unit}"
    if kind is float:
        unit = next((u for s, u in _UNITS if key.endswith(s)), "")
        return f"expected a number{unit}"
    if kind is bool:
        return "expected true or false"
    if kind is str:
        return "expected a string"
    origin = getattr(kind, "__origin__", None)
    if origin is list:
        return 'expected a list, e.g. ["a", "b"] (as JSON in an environment variable)'
    if origin is dict:
        return "expected a table (a JSON object in an environment variable)"
    return fallback[:1].lower() + fallback[1:]


# Units by key suffix, for error messages ("expected a whole number of bytes").
_UNITS = (
    ("_bytes", " of bytes"),
    ("_file_size", " of bytes"),
    ("_message_size", " of bytes"),
    ("inline_limit", " of bytes"),
    ("_ms", " of milliseconds"),
    ("_seconds", " of seconds"),
    ("_timeout", " of seconds"),
    ("_interval", " of seconds"),
    ("_backoff_max", " of seconds"),
    ("port", " from 1 to 65535"),
)


def _check(settings: Settings, sources: Sources | None = None) -> None:
    sources = sources or {}
    for (section, key), allowed in CHOICES.items():
        value = getattr(getattr(settings, section), key)
        if value not in allowed:
            raise ConfigError(
                f"invalid setting {_label(sources, section, key)}: "
                f"expected one of {', '.join(allowed)}"
            )
    positive = [
        ("http", "port"),
        ("http", "max_body_bytes"),
        ("http", "inline_limit"),
        ("postgres", "min_size"),
        ("postgres", "max_size"),
        ("kafka", "max_message_size"),
        ("kafka", "partitions"),
        ("kafka", "publish_timeout"),
        ("kafka", "session_timeout_ms"),
        ("kafka", "heartbeat_interval_ms"),
        ("kafka", "lag_log_interval"),
        ("consumer", "concurrency"),
        ("consumer", "batch_size"),
        ("consumer", "max_attempts"),
        ("consumer", "lease_seconds"),
        ("consumer", "stop_grace"),
        ("sftp", "max_file_size"),
        ("mllp", "max_frame_bytes"),
        ("mllp", "inline_limit"),
        ("mllp", "idle_timeout"),
        ("storage", "staging_timeout"),
        ("http", "graceful_timeout"),
    ]
    for section, key in positive:
        if getattr(getattr(settings, section), key) <= 0:
            raise ConfigError(
                f"invalid setting {_label(sources, section, key)}: expected a number above 0"
            )
    if settings.consumer.linger < 0:
        raise ConfigError(
            f"invalid setting {_label(sources, 'consumer', 'linger')}: expected 0 or more seconds"
        )
    for section in ("http", "sftp", "mllp"):
        port = getattr(settings, section).port
        if not 0 < port < 65536:
            raise ConfigError(
                f"invalid setting {_label(sources, section, 'port')}: "
                "expected a port number from 1 to 65535"
            )
    if not 0 <= settings.metrics.port < 65536:
        raise ConfigError(
            f"invalid setting {_label(sources, 'metrics', 'port')}: "
            "expected a port number from 1 to 65535, or 0 for no metrics server"
        )
    for section in ("http", "mllp"):
        if getattr(settings, section).reuse_port and not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError(
                f"invalid setting {_label(sources, section, 'reuse_port')}: "
                "this system has no SO_REUSEPORT"
            )
    _check_mllp(settings.mllp)
    _check_http_tls(settings.http)
    _check_ciphers(settings.sftp.ciphers, sources)
    if settings.kafka.servers:
        for section in ("http", "mllp", "sftp"):
            check_kafka(settings.kafka, getattr(settings, section).inline_limit, section)


# Room for an event's own fields around an inline payload (uuid, route, metadata).
KAFKA_EVENT_OVERHEAD = 64 * 1024
# librdkafka settings that carry mm-bronze's delivery promise; kafka.options may not set them.
KAFKA_PROTECTED_OPTIONS = (
    "acks",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
)


def check_kafka(kafka: KafkaSettings, inline_limit: int, door: str = "http") -> None:
    """Raise ``ConfigError`` when an inline event could exceed what Kafka accepts."""
    if inline_limit + KAFKA_EVENT_OVERHEAD > kafka.max_message_size:
        raise ConfigError(
            f"invalid setting: {door}.inline_limit ({env_name(door, 'inline_limit')}) = "
            f"{inline_limit} must stay at least {KAFKA_EVENT_OVERHEAD} bytes below "
            f"kafka.max_message_size (KAFKA_MAX_MESSAGE_SIZE) = {kafka.max_message_size}; "
            "larger payloads are claim-checked through storage staging"
        )
    protected = sorted(set(KAFKA_PROTECTED_OPTIONS) & set(kafka.options))
    if protected:
        raise ConfigError(
            f"invalid setting: kafka.options may not set {', '.join(protected)}: "
            "mm-bronze relies on them to never lose an accepted event"
        )


def _check_ciphers(ciphers: list[str], sources: Sources) -> None:
    """Every name a cipher asyncssh implements (asked only for names other than the default:
    importing asyncssh took half a second here, which no command should pay for nothing)."""
    if ciphers == list(SFTP_CIPHERS):
        return
    label = _label(sources, "sftp", "ciphers")
    if not ciphers:
        raise ConfigError(f"invalid setting {label}: expected at least one cipher")
    from asyncssh.encryption import get_encryption_algs

    known = [name.decode() for name in get_encryption_algs()]
    for name in ciphers:
        if name not in known:
            raise ConfigError(
                f"invalid setting {label}: {name!r} is not a cipher this server implements;"
                f" expected some of {', '.join(known)}"
            )


def _check_http_tls(http: HttpSettings) -> None:
    """What ``serve --http`` would refuse at start, refused when settings load (so ``config``
    and ``doctor`` refuse it too)."""
    if bool(http.tls_cert) != bool(http.tls_key):
        raise ConfigError("invalid setting: http.tls_cert and http.tls_key must be set together")
    if http.tls_client_ca and not http.tls_cert:
        raise ConfigError("invalid setting: http.tls_client_ca needs http.tls_cert and tls_key")


def _check_mllp(mllp: MllpSettings) -> None:
    import ipaddress

    for peer in mllp.allowed_peers:
        try:
            ipaddress.ip_network(peer, strict=False)
        except ValueError:
            raise ConfigError(
                f"invalid setting: mllp.allowed_peers ({env_name('mllp', 'allowed_peers')}): "
                f"{peer!r} is not an IP address or CIDR network"
            ) from None
    if bool(mllp.tls_cert) != bool(mllp.tls_key):
        raise ConfigError("invalid setting: mllp.tls_cert and mllp.tls_key must be set together")
    if mllp.tls_client_ca and not mllp.tls_cert:
        raise ConfigError("invalid setting: mllp.tls_client_ca needs mllp.tls_cert and tls_key")
    if mllp.tls_client_fingerprints and not mllp.tls_client_ca:
        raise ConfigError("invalid setting: mllp.tls_client_fingerprints needs mllp.tls_client_ca")


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
