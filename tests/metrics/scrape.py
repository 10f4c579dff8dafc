"""Scraping ``/metrics`` and reading samples from it, as Prometheus would."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.polling import wait_for

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def label_values(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for sample, labels in samples if sample == name}


def wait_scrape(
    url: str, ready: Callable[[Samples], bool], timeout: float = 60, token: str | None = None
) -> Samples:
    def scraped() -> Samples:
        try:
            return scrape(url, token)
        except httpx.HTTPError:
            return {}

    return wait_for(
        scraped,
        lambda samples: bool(samples) and ready(samples),
        timeout=timeout,
        every=0.2,
        what=f"the metrics at {url} in the expected state",
    )
