"""``mm-bronze doctor``: every check passes on a healthy setup, and each failure is named
with its fix, exit status 1."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from mm_bronze.bus.stamp import HEADER
from mm_bronze.doctor.run import CHECKS
from tests.doctor.conftest import host_key, run_doctor, tls_files
from tests.services.mm_bronze import free_port, run_cli
from tests.services.object_stores import S3Service


def healthy_env(dsn: str, data: Path, **extra: str) -> dict[str, str]:
    """An external database, local storage, a host key and TLS on both doors."""
    host_key(data / "sftp" / "ssh_host_ed25519_key")
    (data / "raw" / "_staging").mkdir(parents=True)  # as `serve` leaves them
    env = {"POSTGRES_DSN": dsn, "MM_BRONZE_DATA_DIR": str(data)}
    for door in ("http", "mllp"):
        files = tls_files(data / f"tls-{door}")
        env[f"MM_BRONZE_{door.upper()}_TLS_CERT"] = files["cert"]
        env[f"MM_BRONZE_{door.upper()}_TLS_KEY"] = files["key"]
        env[f"MM_BRONZE_{door.upper()}_TLS_CLIENT_CA"] = files["ca"]
    return {**env, **extra}


def kafka_env(servers: str) -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "KAFKA_SERVERS": servers,
        "KAFKA_BRONZE_API_TOPIC": f"bronze-ingest-api-{tag}",
        "KAFKA_BRONZE_SFTP_TOPIC": f"bronze-ingest-sftp-{tag}",
        "MM_BRONZE_KAFKA_MLLP_TOPIC": f"bronze-ingest-mllp-{tag}",
    }


def test_healthy_setup_on_kafka_passes_every_check(
    migrated_dsn: str, kafka: str, tmp_path: Path
) -> None:
    env = healthy_env(migrated_dsn, tmp_path, **kafka_env(kafka))
    status, checks = run_doctor(env=env)
    assert list(checks) == list(CHECKS)
    assert {name: c["status"] for name, c in checks.items()} == dict.fromkeys(CHECKS, "ok")
    assert status == 0
    # The probe topic is gone, and nothing was written to the real topics.
    topics = AdminClient({"bootstrap.servers": kafka}).list_topics(timeout=5).topics
    assert not [t for t in topics if t.startswith("mm-bronze-doctor-")]
    assert env["KAFKA_BRONZE_API_TOPIC"] not in topics
    # Storage was probed, and nothing is left there.
    assert "write, read and delete of a probe object" in checks["storage"]["detail"]
    assert "write, read and delete of a probe object" in checks["staging"]["detail"]
    assert [p.name for p in (tmp_path / "raw").rglob("*")] == ["_staging"]


def test_healthy_embedded_setup_in_text(embedded_data_dir: Path) -> None:
    data = ["--data-dir", str(embedded_data_dir)]
    assert run_cli("migrate", *data).returncode == 0
    done = run_cli("doctor", *data)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    marks = {line.split()[0] for line in lines[:-1]}
    assert marks == {"✔", "-"}  # passed, or not configured here
    assert lines[1].startswith("✔ postgres") and "embedded" in lines[1]
    assert lines[3].startswith("✔ bus") and "embedded queue" in lines[3]
    assert any(line.startswith("- kafka message size") for line in lines)
    assert lines[-1].endswith("0 failed, 4 not applicable")
    assert done.stderr == ""


def test_postgres_unreachable(tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": f"postgresql://mm@127.0.0.1:{free_port()}/metadata"}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["postgres"]["status"] == "fail"
    assert "Connection refused" in checks["postgres"]["detail"]
    assert "POSTGRES_DSN" in checks["postgres"]["fix"]
    assert checks["migrations"]["status"] == "skip"
    assert checks["bus"]["status"] == "skip"
    assert checks["storage"]["status"] == "ok"  # the other checks still run


def test_missing_embedded_database(tmp_path: Path) -> None:
    status, checks = run_doctor("--data-dir", str(tmp_path))
    assert status == 1
    assert checks["postgres"]["detail"] == f"no embedded database at {tmp_path / 'pg'}"
    assert "mm-bronze migrate" in checks["postgres"]["fix"]
    assert list(tmp_path.iterdir()) == []  # the doctor creates neither database nor storage


def test_migrations_not_current(dsn: str, tmp_path: Path) -> None:
    status, checks = run_doctor("--data-dir", str(tmp_path), env={"POSTGRES_DSN": dsn})
    assert status == 1
    assert checks["postgres"]["status"] == "ok"
    assert checks["migrations"]["status"] == "fail"
    assert checks["migrations"]["detail"].startswith("migration(s) 0001, 0002")
    assert "mm-bronze migrate" in checks["migrations"]["fix"]
    # Nothing was applied.
    status, checks = run_doctor("--data-dir", str(tmp_path), env={"POSTGRES_DSN": dsn})
    assert checks["migrations"]["status"] == "fail"


def test_storage_not_writable(migrated_dsn: str, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_bytes(b"")
    env = {"POSTGRES_DSN": migrated_dsn, "RAW_STORAGE_URL": blocked.as_uri() + "/raw"}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["storage"]["status"] == "fail"
    assert "RAW_STORAGE_URL" in checks["storage"]["fix"]
    assert checks["staging"]["status"] == "fail"


def test_storage_bucket_missing(migrated_dsn: str, s3: S3Service, tmp_path: Path) -> None:
    env = {
        "POSTGRES_DSN": migrated_dsn,
        "RAW_STORAGE_URL": f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/raw",
        "MM_BRONZE_STORAGE_OPTIONS": msgspec.json.encode(s3.options).decode(),
    }
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["storage"]["status"] == "fail"
    assert "write failed" in checks["storage"]["detail"]


def test_storage_endpoint_refusing_connections(migrated_dsn: str, tmp_path: Path) -> None:
    """Both storage checks fail with the connection error, at once: the doctor does not wait
    out the S3 client's retries (it took ~30 s, each check hitting its 15 s timeout)."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    options = {"key": "testing", "secret": "testing", "endpoint_url": endpoint}
    env = {
        "POSTGRES_DSN": migrated_dsn,
        "RAW_STORAGE_URL": "s3://bronze/raw",
        "MM_BRONZE_STORAGE_OPTIONS": msgspec.json.encode(options).decode(),
    }
    started = time.monotonic()
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    elapsed = time.monotonic() - started
    assert status == 1
    for name, url in (("storage", "s3://bronze/raw"), ("staging", "s3://bronze/raw/_staging")):
        assert checks[name]["status"] == "fail"
        assert checks[name]["detail"].startswith(f"{url}: write failed: ")
        assert f'Could not connect to the endpoint URL: "{endpoint}/' in checks[name]["detail"]
        assert "storage.options" in checks[name]["fix"]
    assert "the endpoint must be reachable" in checks["storage"]["fix"]
    assert checks["postgres"]["status"] == "ok"
    assert elapsed < 15, f"doctor took {elapsed:.1f} s"


def test_storage_on_s3_passes(migrated_dsn: str, s3: S3Service, tmp_path: Path) -> None:
    url = s3.new_url()
    env = {
        "POSTGRES_DSN": migrated_dsn,
        "RAW_STORAGE_URL": url,
        "MM_BRONZE_STORAGE_OPTIONS": msgspec.json.encode(s3.options).decode(),
        "MM_BRONZE_STORAGE_COMPRESSION": "zstd",
    }
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert (checks["storage"]["status"], checks["staging"]["status"]) == ("ok", "ok")
    assert status == 0
    assert s3.filesystem().find(url.removeprefix("s3://")) == []


def test_kafka_topic_smaller_than_an_inline_limit(
    migrated_dsn: str, kafka: str, tmp_path: Path
) -> None:
    env = {"POSTGRES_DSN": migrated_dsn, **kafka_env(kafka)}
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    admin = AdminClient({"bootstrap.servers": kafka})
    created = admin.create_topics([NewTopic(topic, 1, -1, config={"max.message.bytes": "100000"})])
    created[topic].result(10)
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    size = checks["kafka message size"]
    assert size["status"] == "fail"
    assert f"topic {topic} accepts 100000 bytes, http.inline_limit needs" in size["detail"]
    assert "max.message.bytes" in size["fix"]
    assert checks["bus"]["status"] == "ok"


def test_kafka_unreachable(migrated_dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": migrated_dsn, "KAFKA_SERVERS": f"127.0.0.1:{free_port()}"}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["bus"]["status"] == "fail"
    assert "KAFKA_SERVERS" in checks["bus"]["fix"]
    assert checks["kafka message size"]["status"] == "skip"


def test_host_key_readable_by_others(migrated_dsn: str, tmp_path: Path) -> None:
    key = host_key(tmp_path / "sftp" / "ssh_host_ed25519_key", mode=0o644)
    status, checks = run_doctor("--data-dir", str(tmp_path), env={"POSTGRES_DSN": migrated_dsn})
    assert status == 1
    assert checks["sftp host key"]["status"] == "fail"
    assert "mode 0644" in checks["sftp host key"]["detail"]
    assert checks["sftp host key"]["fix"] == f"chmod 600 {key}"


def test_configured_host_key_missing(migrated_dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": migrated_dsn, "MM_BRONZE_SFTP_HOST_KEY_PATH": str(tmp_path / "nokey")}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["sftp host key"]["status"] == "fail"


def test_certificate_expiring_within_30_days(migrated_dsn: str, tmp_path: Path) -> None:
    files = tls_files(tmp_path / "tls", days=10)
    env = {
        "POSTGRES_DSN": migrated_dsn,
        "MM_BRONZE_MLLP_TLS_CERT": files["cert"],
        "MM_BRONZE_MLLP_TLS_KEY": files["key"],
    }
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["mllp tls"]["status"] == "fail"
    assert "expires in 9 days" in checks["mllp tls"]["detail"]
    assert "renew" in checks["mllp tls"]["fix"]
    assert checks["http tls"]["status"] == "skip"


def test_certificate_not_matching_its_key(migrated_dsn: str, tmp_path: Path) -> None:
    one, other = tls_files(tmp_path / "one"), tls_files(tmp_path / "other")
    env = {
        "POSTGRES_DSN": migrated_dsn,
        "MM_BRONZE_HTTP_TLS_CERT": one["cert"],
        "MM_BRONZE_HTTP_TLS_KEY": other["key"],
    }
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["http tls"]["status"] == "fail"
    assert "does not match" in checks["http tls"]["detail"]


def test_free_space_below_the_threshold(migrated_dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": migrated_dsn}
    status, checks = run_doctor("--data-dir", str(tmp_path), "--min-free", "1000000T", env=env)
    assert status == 1
    assert checks["free space"]["status"] == "fail"
    assert "below" in checks["free space"]["detail"]
    status, checks = run_doctor("--data-dir", str(tmp_path), "--min-free", "1M", env=env)
    assert checks["free space"]["status"] == "ok"


def test_http_beyond_loopback_needs_an_api_client(migrated_dsn: str, tmp_path: Path) -> None:
    """`serve --http` refuses a non-loopback address without API clients: so does doctor."""
    env = {"POSTGRES_DSN": migrated_dsn, "MM_BRONZE_HTTP_HOST": "0.0.0.0"}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["http access"]["status"] == "fail"
    assert checks["http access"]["detail"] == (
        "http.host 0.0.0.0 is not loopback and no API client exists: `serve --http` refuses"
        " to start"
    )
    assert "mm-bronze clients add NAME" in checks["http access"]["fix"]
    assert run_cli("clients", "add", "partner", env={"POSTGRES_DSN": migrated_dsn}).returncode == 0
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert checks["http access"]["status"] == "ok"
    assert checks["http access"]["detail"] == "1 API client(s); every request needs a token"
    # The last client removed: the door refuses everything, whatever its address.
    assert (
        run_cli("clients", "remove", "partner", env={"POSTGRES_DSN": migrated_dsn}).returncode == 0
    )
    for host in ("0.0.0.0", "127.0.0.1"):
        status, checks = run_doctor(
            "--data-dir", str(tmp_path), env={**env, "MM_BRONZE_HTTP_HOST": host}
        )
        assert checks["http access"]["status"] == "fail", host
        assert checks["http access"]["detail"] == (
            "no API client, and one has existed: every HTTP request is refused (401)"
        )
        assert "mm-bronze clients add NAME" in checks["http access"]["fix"]


def test_invalid_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "bronze.toml"
    config.write_text('[http]\nport = "eighty"\n')
    done = run_cli("doctor", "--config", str(config))
    assert done.returncode == 1
    first, fix = done.stdout.splitlines()[:2]
    assert first.startswith("✘ settings") and "http.port" in first
    assert fix.strip().startswith("fix: correct it")
    assert done.stdout.splitlines()[-1] == "0 passed, 1 failed, 11 not applicable"


@pytest.mark.parametrize("value", ["lots", "-1G"])
def test_min_free_must_be_a_size(value: str) -> None:
    done = run_cli("doctor", f"--min-free={value}")
    assert done.returncode == 2
    assert "is not a size" in done.stderr.splitlines()[-1]


def test_json_shape(migrated_dsn: str, tmp_path: Path) -> None:
    done = run_cli(
        "doctor", "--json", "--data-dir", str(tmp_path), env={"POSTGRES_DSN": migrated_dsn}
    )
    report = msgspec.json.decode(done.stdout)
    assert set(report) == {"ok", "checks", "summary"}
    assert set(report["summary"]) == {"ok", "fail", "skip"}
    assert sum(report["summary"].values()) == len(report["checks"]) == len(CHECKS)
    for check in report["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] in ("ok", "fail", "skip")
        assert bool(check["fix"]) == (check["status"] == "fail")
    assert os.path.isabs(report["checks"][0]["detail"].split("data directory ")[1].rstrip(")"))


def test_settings_a_role_would_refuse_at_start(migrated_dsn: str, tmp_path: Path) -> None:
    env = {"POSTGRES_DSN": migrated_dsn, "MM_BRONZE_STORAGE_PATH_TEMPLATE": "{format}/{date}"}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["settings"]["status"] == "fail"
    assert "{sha256}" in checks["settings"]["detail"]
    assert checks["postgres"]["status"] == "ok"  # the other checks still run


def test_settings_for_another_bus_than_the_deployments(dsn: str, tmp_path: Path) -> None:
    """What ``serve`` would refuse at start, the doctor names (``metadata.deployment``)."""
    env = {"POSTGRES_DSN": dsn}  # a database of its own: `db bus` migrates it
    recorded = run_cli("db", "bus", "kafka", "--data-dir", str(tmp_path), env=env)
    assert recorded.returncode == 0, recorded.stderr
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["bus"]["status"] == "fail"
    assert checks["bus"]["detail"].startswith("this database's deployment publishes to Kafka")
    assert "mm-bronze db bus embedded" in checks["bus"]["fix"]


def test_events_another_deployment_accepted_wait_on_kafka(
    dsn: str, kafka: str, tmp_path: Path
) -> None:
    """What a consumer would refuse at start (``bus.stamp``), the doctor names."""
    env = {"POSTGRES_DSN": dsn, **kafka_env(kafka)}
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)  # nothing waits yet
    assert checks["bus"]["status"] == "ok", checks["bus"]
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    adopted = run_cli("db", "adopt", ours, "--data-dir", str(tmp_path), env=env)
    assert adopted.returncode == 0, adopted.stderr
    topic = env["KAFKA_BRONZE_API_TOPIC"]
    producer = Producer({"bootstrap.servers": kafka})
    producer.produce(topic, b"{}", b"key", headers=[(HEADER, theirs.encode())])
    assert producer.flush(10) == 0
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert status == 1
    assert checks["bus"]["status"] == "fail"
    assert checks["bus"]["detail"] == (
        f"the newest events on {topic} were accepted by deployment {theirs}, and this "
        f"database is deployment {ours}: consumers with these settings would refuse them"
    )
    assert f"`mm-bronze db adopt {theirs}`" in checks["bus"]["fix"]
    adopted = run_cli("db", "adopt", theirs, "--data-dir", str(tmp_path), env=env)
    assert adopted.returncode == 0, adopted.stderr
    status, checks = run_doctor("--data-dir", str(tmp_path), env=env)
    assert checks["bus"]["status"] == "ok", checks["bus"]
