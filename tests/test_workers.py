"""``consentgate serve --workers N``: several worker processes on one machine.

Each worker has its own store writer and chain segment; metrics are summed across
workers (prometheus-client multiprocess mode), whichever worker answers
``/_consent/metrics``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2 as httpx
import pytest

from tests import support

pytestmark = [pytest.mark.slow, pytest.mark.both_backends]

KEYS = "workers-key-newest-0123456789,workers-key-older-0123456789"
API = "/_consent/api/consent"


def consents_total(metrics_text: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("consentgate_consents_total{")
    )


async def test_two_workers_share_the_log_and_sum_their_metrics(
    tmp_path: Path, database_url: str
) -> None:
    config = tmp_path / "scraper.toml"
    config.write_text('[server]\nmetrics_allow = ["127.0.0.1"]\n')  # the scraper's address
    with support.consentgate_server(
        "--config",
        str(config),
        "--workers",
        "2",
        "--data-dir",
        str(tmp_path / "data"),
        "--database",
        database_url,
        env={"CONSENTGATE_SECRET_KEYS": KEYS},
    ) as (base, _):
        acked = 0

        async def post() -> None:
            nonlocal acked
            # a new connection each time, so both workers get requests
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                r = await client.post(API, json={"method": "accept_all"})
                assert r.status_code == 201
                acked += 1

        segments: dict[str, int] = {}
        for _ in range(40):  # until both workers have written (normally the first round)
            await asyncio.gather(*(post() for _ in range(25)))
            segments = await support.walk_chains(database_url, KEYS.split(","))
            if len(segments) == 2:
                break
        assert len(segments) == 2  # two workers, two chain segments, both intact
        assert sum(segments.values()) == acked
        for _ in range(6):  # new connections: whichever worker answers reports the sum
            async with httpx.AsyncClient(base_url=base) as client:
                text = (await client.get("/_consent/metrics")).text
            assert consents_total(text) == acked
            assert f"consentgate_write_seconds_count {float(acked)}" in text
