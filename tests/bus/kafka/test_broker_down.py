"""Broker outage: the HTTP door refuses with 503 + Retry-After, then resumes on its own."""

from __future__ import annotations

import httpx
import pytest

from tests.bus.kafka.conftest import kafka_env_for
from tests.ingest.http.helpers import wait_status
from tests.polling import wait_for
from tests.services.kafka import TansuBroker
from tests.services.mm_bronze import MmBronze

ROUTE = "/ingest/fhir/json/R4/resource"


def patient(n: int) -> bytes:
    return b'{"resourceType": "Patient", "id": "outage-%d"}' % n


def test_broker_outage_refuses_then_resumes_without_restart(
    tmp_path_factory: pytest.TempPathFactory, dsn: str
) -> None:
    # Its own broker, whatever MM_BRONZE_TEST_KAFKA says: this test stops and restarts it.
    workdir = tmp_path_factory.mktemp("outage")
    broker = TansuBroker(workdir).start()
    env = kafka_env_for(broker.servers, dsn, MM_BRONZE_KAFKA_PUBLISH_TIMEOUT="3")
    server = MmBronze(workdir / "mmb", env=env)
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=30) as client:
            before = client.post(ROUTE, content=patient(0))
            assert before.status_code == 202, before.text
            wait_status(client, before.json()["uuid"], {"stored"})

            broker.stop(kill=True)
            refused = client.post(ROUTE, content=patient(1))
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"].isdigit()
            assert refused.json()["error"] == "unavailable"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["bus"].startswith("unavailable")

            broker = TansuBroker(workdir, port=broker.port).start()
            accepted = _post_until_accepted(client, patient(3), timeout=60)
            assert wait_status(client, accepted, {"stored"}, timeout=90)["status"] == "stored"
            assert client.get("/readyz").status_code == 200
            assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
        broker.stop()


def _post_until_accepted(client: httpx.Client, body: bytes, timeout: float) -> str:
    def post() -> httpx.Response:
        response = client.post(ROUTE, content=body)
        assert response.status_code in (202, 503), response.text
        return response

    accepted = wait_for(
        post,
        lambda response: response.status_code == 202,
        timeout=timeout,
        every=0.5,
        what="ingestion to resume after the broker returned",
    )
    return str(accepted.json()["uuid"])
