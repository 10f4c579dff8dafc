"""The deployment files (Dockerfile, compose.yaml, config/compose.env) are checked mechanically:
hadolint, the compose specification's JSON schema, and what mm-bronze needs of them.

No Docker engine runs here, so the image itself is not built by the tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from mm_bronze.ingest.mllp.access import check_exposure
from mm_bronze.settings import KafkaSettings, load_settings

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
    assert (settings.metrics.host, settings.metrics.port) == ("0.0.0.0", 9100)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions: list[tuple[str, str]] = []
    for line in lines:
        if line and line[0] != "#":
            word, rest = line.split(None, 1)
            instructions.append((word, rest))
    final = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[final:]


def image_environment() -> dict[str, str]:
    env = {}
    for word, rest in dockerfile_instructions():
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=('[^']*'|\S+)", rest):
                env[key] = value.strip("'")
    return env


def compose() -> dict[str, Any]:
    return YAML(typ="safe").load((ROOT / "compose.yaml").read_text())


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run(
        [str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_exposes_every_door_keeps_its_data_on_a_volume_and_checks_health() -> None:
    final = dockerfile_instructions()
    (expose,) = [rest.split() for word, rest in final if word == "EXPOSE"]
    assert sorted(expose) == ["2222", "2575", "8000"]
    (volume,) = [rest for word, rest in final if word == "VOLUME"]
    env = image_environment()
    assert json.loads(volume) == [env["MM_BRONZE_DATA_DIR"]]
    (health,) = [rest for word, rest in final if word == "HEALTHCHECK"]
    # No curl in the slim image; the probe reads the settings (HTTPS once TLS is on).
    assert json.loads(health.split("CMD", 1)[1]) == [
        "python",
        "-m",
        "mm_bronze.healthcheck",
        "/healthz",
    ]
    build = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in build  # exactly what uv.lock pins, no test tools


def test_image_environment_serves_every_door_on_all_interfaces() -> None:
    settings = load_settings(environ=image_environment())
    assert settings.http.host == settings.sftp.host == settings.mllp.host == "0.0.0.0"
    check_exposure(settings.mllp)  # MLLP off loopback needs allowed peers: the image has them
    assert settings.log.format == "json"


def test_compose_file_follows_the_compose_specification() -> None:
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.compose-spec", str(ROOT / "compose.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_door_and_keeps_sftp_state_on_a_volume() -> None:
    services = compose()["services"]
    roles = {name: svc["command"] for name, svc in services.items() if "command" in svc}
    for role in ("--http", "--sftp", "--mllp", "--consumers"):
        assert ["serve", role] in roles.values(), role
    assert "2575:2575" in services["mllp"]["ports"]
    data_dir = image_environment()["MM_BRONZE_DATA_DIR"]
    volume, _, target = services["sftp"]["volumes"][0].partition(":")
    assert target == data_dir  # users.json, the host key and the spool live there
    assert volume in compose()["volumes"]


def test_readme_lists_every_topic_mm_bronze_creates() -> None:
    readme = (ROOT / "README.md").read_text()
    deploying = readme[readme.index("## Deploying and scaling") :]
    kafka = KafkaSettings()
    for topic in (kafka.api_topic, kafka.sftp_topic, kafka.mllp_topic, kafka.dlq_topic):
        assert f"`{topic}`" in deploying.split("How consumers behave")[0], topic
    for group in (kafka.api_group, kafka.sftp_group, kafka.mllp_group):
        assert f"`{group}`" in deploying.split("How consumers behave")[0], group
