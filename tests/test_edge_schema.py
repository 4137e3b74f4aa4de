"""Schemathesis over the whole OpenAPI document ``/_consent/openapi.json`` serves, against
a real ``consentgate serve`` in front of a real upstream: every operation (admin ones
with an admin token), a bounded number of generated requests each, no server error.

Runs in CI with the rest of the suite; ``EDGE_SCHEMA_EXAMPLES`` raises the bound for a
longer local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from consentgate.cli import cli
from tests.edge_support import KEYS, edge_server, recording_upstream

EXAMPLES = int(os.environ.get("EDGE_SCHEMA_EXAMPLES", "5"))


def admin_token(data_dir: Path) -> str:
    result = CliRunner().invoke(
        cli,
        ["tokens", "create", "--role", "admin", "--name", "schemathesis"],
        env={"CONSENTGATE_DATA_DIR": str(data_dir), "CONSENTGATE_SECRET_KEYS": KEYS},
    )
    assert result.exit_code == 0, result.output
    return result.output.split()[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    data_dir = tmp_path_factory.mktemp("edge-schema")
    token = admin_token(data_dir)
    with recording_upstream() as up, edge_server(up, data_dir) as (port, _):
        yield port, token


def test_no_operation_gives_a_server_error(served: tuple[int, str]) -> None:
    port, token = served
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/_consent/openapi.json")
    auth = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    paths = {op.path for op in operations}
    assert {"/_consent/api/consent", "/_consent/healthz", "/_consent/metrics"} <= paths
    errors: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: schemathesis.Case) -> None:
                response = case.call(headers={**auth, **(case.headers or {})}, timeout=10)
                if response.status_code >= 500:
                    errors.append(
                        f"{case.method} {case.formatted_path} -> {response.status_code}: "
                        f"{response.text[:200]!r} ({case.as_curl_command()})"
                    )

            if mode is GenerationMode.NEGATIVE and not has_inputs(operation):
                continue  # nothing to make invalid
            try:
                call()
            except Unsatisfiable:
                # no invalid request can be made of it (e.g. only a free-form path
                # parameter): its valid requests ran above
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert errors == []


def has_inputs(operation: schemathesis.APIOperation) -> bool:
    parts = (operation.path_parameters, operation.query, operation.headers, operation.body)
    return any(len(part) for part in parts)
