"""No route ignores a query parameter: one it does not take is a 400 ``invalid_parameter``
that names it and the ones the route takes, and a request with known ones still works."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from mm_bronze.ingest.http import openapi
from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze

MESSAGE = b"MSH|^~\\&|LAB|HOSP|||20261201120000||ORU^R01|QP1|P|2.5.1\r"
TAKES_NONE = "unknown parameter; this route takes none"


@pytest.fixture(scope="module")
def client(server: MmBronze) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def stored(client: httpx.Client) -> str:
    """The uuid of a stored submission of ``MESSAGE``."""
    accepted = client.post("/ingest/hl7/text/2.5.1/oru", content=MESSAGE)
    assert accepted.status_code == 202, accepted.text
    uuid = str(accepted.json()["uuid"])
    wait_status(client, uuid, {"stored", "duplicate"})
    return uuid


def assert_refused(response: httpx.Response, name: str, why: str = TAKES_NONE) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "invalid_parameter",
        "message": f"{name}: {why}",
        "parameter": name,
    }


def test_submission_status_refuses_a_parameter(client: httpx.Client, stored: str) -> None:
    assert_refused(client.get(f"/ingest/{stored}?sinse=2026-12-01"), "sinse")
    assert_refused(client.get(f"/ingest/{stored}", params={"fields": "sha256"}), "fields")
    status = client.get(f"/ingest/{stored}")
    assert status.status_code == 200 and status.json()["uuid"] == stored


def test_submission_content_refuses_a_parameter(client: httpx.Client, stored: str) -> None:
    assert_refused(client.get(f"/ingest/{stored}/content?download=1"), "download")
    head = client.head(f"/ingest/{stored}/content?download=1")
    assert head.status_code == 400 and head.content == b""
    content = client.get(f"/ingest/{stored}/content")
    assert content.status_code == 200 and content.content == MESSAGE
    unchanged = {"If-None-Match": content.headers["etag"]}
    assert client.get(f"/ingest/{stored}/content", headers=unchanged).status_code == 304


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"])
def test_operations_routes_refuse_a_parameter(client: httpx.Client, path: str) -> None:
    assert_refused(client.get(path + "?verbose=1"), "verbose")
    assert_refused(client.get(path + "?=1"), "")  # a nameless one too
    assert client.get(path).status_code == 200
    assert client.get(path + "?").status_code == 200  # an empty query string has none


def test_the_container_health_probe_still_passes(server: MmBronze) -> None:
    """The image's HEALTHCHECK and compose.yaml's ask for the bare paths."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MM_BRONZE_")},
        "MM_BRONZE_HTTP_PORT": str(server.http_port),
    }
    for path in ("/healthz", "/readyz"):
        probe = [sys.executable, "-m", "mm_bronze.healthcheck", path]
        healthy = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60)
        assert healthy.returncode == 0, healthy.stderr


def test_every_documented_route_refuses_what_it_does_not_document(
    client: httpx.Client, stored: str
) -> None:
    """Each operation of the OpenAPI document, asked with a parameter it does not list: a
    400 naming it, and the message lists exactly the query parameters documented."""
    values = {"uuid": stored, "id": "1", "format": "fhir", "content_type": "json"}
    values |= {"version": "R4", "subtype": "patient"}
    document = openapi.document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            documented = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "query"}
            response = client.request(
                method.upper(),
                path.format(**values) + "?zzz=1",
                content=b'{"resourceType": "Patient"}' if method == "post" else None,
            )
            assert response.status_code == 400, (method, path, response.text)
            body = response.json()
            assert body["error"] == "invalid_parameter", (method, path)
            assert body["parameter"] == "zzz", (method, path)
            if documented:
                known = body["message"].removeprefix("zzz: unknown parameter; known: ")
                assert set(known.split(", ")) == documented, (method, path)
            else:
                assert body["message"] == f"zzz: {TAKES_NONE}", (method, path)
