"""`GET /openapi.json` and `GET /docs`: a valid document of every route, and a real door that
answers as it says (schemathesis against `serve --all`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.applications import Starlette
from starlette.routing import Route

from mm_bronze.ingest.http import openapi
from mm_bronze.ingest.http.app import build_app
from mm_bronze.ingest.http.deps import HttpDeps
from mm_bronze.ingest.http.ingest import SEGMENT_NAMES
from mm_bronze.metrics import Metrics
from mm_bronze.settings import HttpSettings
from tests.ingest.http.helpers import wait_status
from tests.services.mm_bronze import MmBronze, run_cli
from tests.services.postgres import create_database

# Every schemathesis check but the two that read the schema as a complete spec of validity
# (negative_data_rejection, positive_data_acceptance): a payload's validity is the format
# validators' to decide, and the documented precedence of `validation` over
# `X-Validation-Level` means an invalid header is ignored when the query names a level.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    missing_required_header,
    unsupported_method,
    allow_header_conformance,
    ignored_auth,
]
EXAMPLES = 25  # per operation and mode: keeps the whole module well under a minute


def served_routes() -> set[tuple[str, str]]:
    """Every (path, method) the door's app routes, HEAD aside (served wherever GET is)."""
    unused: Any = object()  # the app is only built and its router read, never called
    deps = HttpDeps(
        settings=HttpSettings(),
        publish=unused,
        topic="",
        storage=unused,
        pool=unused,
        auth=unused,
        readiness=unused,
        metrics=Metrics(),
        dead_letters=unused,  # routed when given, as `serve --all` gives them
    )
    app: Any = build_app(deps)
    while not isinstance(app, Starlette):  # through the door's middleware to the router
        app = app.app
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    # The lean ingest endpoint, matched before the router (HttpDoor).
    served.add(("/ingest/" + "/".join(f"{{{name}}}" for name in SEGMENT_NAMES), "post"))
    return served


def test_every_route_is_documented(server: MmBronze) -> None:
    document = httpx.get(server.url + "/openapi.json").json()
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served_routes() == documented


def test_every_operation_documents_what_every_route_answers(server: MmBronze) -> None:
    """A wrong method (405 with Allow), a long target (414), a defect (500), HTTP/2 (505): any
    route answers them."""
    document = httpx.get(server.url + "/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert {"405", "414", "500", "505"} <= set(operation["responses"]), (path, method)
            assert "Allow" in operation["responses"]["405"]["headers"], (path, method)
    wrong = httpx.put(server.url + "/submissions")
    assert wrong.status_code == 405 and wrong.headers["allow"]


def test_document_is_valid_openapi_3_1(server: MmBronze) -> None:
    response = httpx.get(server.url + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document == openapi.document()
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_docs_page_is_readable_offline(server: MmBronze) -> None:
    response = httpx.get(server.url + "/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for path in httpx.get(server.url + "/openapi.json").json()["paths"]:
        assert f"<code>{path}</code>" in page
    assert "unsupported_format" in page and "OperationOutcome" in page
    # Nothing is fetched from elsewhere: no absolute URL at all, no script.
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}", page, re.IGNORECASE)
    assert "<script" not in page.lower()
    for url in re.findall(r'(?:href|src)="([^"]*)"', page):
        assert url.startswith("#") or url == "openapi.json", url


@pytest.fixture(scope="module")
def guarded_dsn(pg_admin_dsn: str) -> str:
    return create_database(pg_admin_dsn)


@pytest.fixture(scope="module")
def token(guarded_dsn: str) -> str:
    added = run_cli("clients", "add", "submitter", env={"POSTGRES_DSN": guarded_dsn})
    assert added.returncode == 0, added.stderr
    return added.stdout.strip()


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, guarded_dsn: str, token: str
) -> Iterator[MmBronze]:
    """A door that requires tokens: a client exists."""
    proc = MmBronze(tmp_path_factory.mktemp("guarded"), env={"POSTGRES_DSN": guarded_dsn})
    proc.start()
    yield proc
    proc.stop()


def test_document_and_docs_need_no_token(guarded: MmBronze) -> None:
    for path in ("/openapi.json", "/docs"):
        assert httpx.get(guarded.url + path).status_code == 200, path
    assert httpx.get(guarded.url + "/ingest/" + "0" * 32).status_code == 401


# The document the door serves (a test above checks they are the same); loaded from the code
# because the schema must be known when tests are collected, before the server starts.
door = schemathesis.openapi.from_dict(openapi.document())
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


def short_wait(case: schemathesis.Case) -> schemathesis.Case:
    """A long poll (`GET /submissions?after=..&wait=S`) held a fraction of a second at most,
    so the generated cases keep the module's time bounded."""
    if isinstance(case.query, dict) and "wait" in case.query:
        try:
            case.query["wait"] = min(float(case.query["wait"]), 0.2)
        except (TypeError, ValueError):
            pass  # not a number: the door answers 400 at once
    return case


@door.parametrize()
@FUZZ
def test_open_door_answers_as_documented(case: schemathesis.Case, server: MmBronze) -> None:
    short_wait(case).call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)


@door.parametrize()
@FUZZ
def test_guarded_door_answers_as_documented(
    case: schemathesis.Case, guarded: MmBronze, token: str
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    short_wait(case).call_and_validate(
        base_url=guarded.url, headers=headers, checks=CHECKS, timeout=30
    )


def test_status_of_stored_and_duplicate_submissions_as_documented(server: MmBronze) -> None:
    """The generated cases rarely name a real submission: follow two through the link."""
    segments = {"format": "fhir", "content_type": "json", "version": "R4", "subtype": "patient"}
    submit = door[openapi.INGEST_PATH]["POST"].Case(
        path_parameters=segments,
        body={"resourceType": "Patient", "id": "documented"},
        media_type="application/fhir+json",
    )
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for want in ({"stored", "duplicate"}, {"duplicate"}):
            accepted = submit.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
            assert accepted.status_code == 202
            uuid = accepted.json()["uuid"]
            wait_status(client, uuid, want)
            status = door["/ingest/{uuid}"]["GET"].Case(path_parameters={"uuid": uuid})
            answer = status.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
            assert answer.json()["status"] in want


def test_content_listing_and_metrics_of_a_stored_submission_as_documented(
    server: MmBronze,
) -> None:
    """Its bytes (then 304 for its ETag), a listing that holds it, and the metrics."""
    segments = {"format": "hl7", "content_type": "text", "version": "2.5.1", "subtype": "oru"}
    message = b"MSH|^~\\&|LAB|HOSP|||20261201120000||ORU^R01|DOC1|P|2.5.1\r"
    submit = door[openapi.INGEST_PATH]["POST"].Case(
        path_parameters=segments, body=message, media_type="application/octet-stream"
    )
    accepted = submit.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
    assert accepted.status_code == 202, accepted.text
    uuid = accepted.json()["uuid"]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        wait_status(client, uuid, {"stored", "duplicate"})

    content = door["/ingest/{uuid}/content"]["GET"]
    read = content.Case(path_parameters={"uuid": uuid})
    body = read.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
    assert body.status_code == 200 and body.content == message
    assert body.headers["content-type"] == ["x-application/hl7-v2+er7"]
    [etag] = body.headers["etag"]
    again = content.Case(path_parameters={"uuid": uuid}, headers={"If-None-Match": etag})
    unchanged = again.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
    assert unchanged.status_code == 304 and unchanged.headers["etag"] == [etag]
    head = httpx.head(f"{server.url}/ingest/{uuid}/content")  # HEAD: as GET, no body
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag
    assert head.headers["content-length"] == str(len(message))

    listing = door["/submissions"]["GET"].Case(query={"after": 0, "limit": 1000, "wait": 0.1})
    page = listing.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
    assert page.status_code == 200 and page.json()["order"] == "asc"
    assert uuid in [item["uuid"] for item in page.json()["items"]]

    scrape = door["/metrics"]["GET"].Case()
    metrics = scrape.call_and_validate(base_url=server.url, checks=CHECKS, timeout=30)
    assert metrics.status_code == 200 and "mm_bronze_submissions" in metrics.text
