"""Payloads are patient data: no byte of them reaches the logs, valid or not."""

from __future__ import annotations

import httpx

from tests.services.mm_bronze import MmBronze, run_cli

MARKER = "Zyxwvut-Patient-Secret-4711"


def test_payload_contents_never_logged(server: MmBronze, module_dsn: str) -> None:
    bodies = {
        "/ingest/fhir/json/R4/patient": [
            f'{{"resourceType": "Patient", "name": [{{"family": "{MARKER}"}}]}}',
            f'{{"resourceType": "Patient", "name": "{MARKER}",}}',
            f'{{"no_type": "{MARKER}"}}',
            # Names the sender chose: a resource type, a key (repeated), are not shown either.
            f'{{"resourceType": "{MARKER}"}}',
            f'{{"resourceType": "Patient", "{MARKER}": 1, "{MARKER}": 2}}',
        ],
        "/ingest/fhir/ndjson/R4/bulk": [
            f'{{"resourceType": "{MARKER}"}}\n{{"resourceType": "Patient", "{MARKER}": 1}}\n',
        ],
        "/ingest/fhir/xml/R4/patient": [
            f'<Patient xmlns="http://hl7.org/fhir"><name value="{MARKER}"/></Patient>',
            f'<Patient xmlns="http://hl7.org/fhir"><name value="{MARKER}"></Patient>',
            f'<{MARKER} xmlns="http://hl7.org/fhir"/>',
            f'<Patient xmlns="http://hl7.org/fhir" {MARKER}="1"><{MARKER}/></Patient>',
            f'<Patient xmlns="http://hl7.org/fhir"><x:{MARKER} xmlns:x="urn:x"/></Patient>',
        ],
        "/ingest/hl7/text/2.5.1/adt": [
            f"MSH|^~\\&|A|B|C|D|20200101||ADT^A01|1|P|2.5.1\rPID|||1||{MARKER}^John\r",
            f"PID|||1||{MARKER}^John\r",
        ],
    }
    uuids = []
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for route, variants in bodies.items():
            for body in variants:
                response = client.post(route, content=body.encode())
                assert response.status_code in (202, 422), response.text
                assert MARKER not in response.text  # the OperationOutcome names places only
                if response.status_code == 202:
                    uuids.append(response.json()["uuid"])
    for submission in uuids:
        result = run_cli("status", submission, env={"POSTGRES_DSN": module_dsn})
        assert result.returncode == 0, result.stderr
        assert submission in result.stdout
    assert MARKER not in server.logs()
