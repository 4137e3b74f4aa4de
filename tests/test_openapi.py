"""The OpenAPI document matches the server: requests generated from it (and mutated
into garbage) never get a 5xx, only documented statuses, and bodies that match the
documented schemas."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from consentgate.app import create_app
from consentgate.config import Settings, Site
from consentgate.consent import CATEGORIES

API = "/_consent/api/consent"


# -- a small JSON Schema validator for the subset the document uses ---------------------


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


TYPES: dict[str, Any] = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "integer": int,
    "number": (int, float),
}


def errors(
    doc: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "$"
) -> Iterator[str]:
    schema = resolve(doc, schema)
    if "type" in schema:
        expected = TYPES[schema["type"]]
        if not isinstance(value, expected) or (
            schema["type"] in ("integer", "number") and isinstance(value, bool)
        ):
            yield f"{path}: expected {schema['type']}, got {value!r}"
            return
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: {value!r} not in {schema['enum']}"
    if "const" in schema and value != schema["const"]:
        yield f"{path}: {value!r} != {schema['const']!r}"
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            yield f"{path}: longer than {schema['maxLength']}"
        if len(value) < schema.get("minLength", 0):
            yield f"{path}: shorter than {schema['minLength']}"
        if "pattern" in schema and not re.search(schema["pattern"], value):
            yield f"{path}: does not match {schema['pattern']}"
        if schema.get("format") == "date-time":
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                yield f"{path}: not a date-time"
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            yield f"{path}: more than {schema['maxItems']} items"
        for i, item in enumerate(value):
            yield from errors(doc, schema.get("items", {}), item, f"{path}[{i}]")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                yield f"{path}: missing {name}"
        props = schema.get("properties", {})
        for name, item in value.items():
            if name in props:
                yield from errors(doc, props[name], item, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                yield f"{path}: unexpected {name}"


# -- strategies generated from the document ---------------------------------------------


def from_schema(doc: dict[str, Any], schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    schema = resolve(doc, schema)
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            base = st.from_regex(schema["pattern"], fullmatch=True)
        else:
            base = st.text(max_size=schema.get("maxLength", 50) + 5)
        return base.filter(lambda s: len(s) <= schema.get("maxLength", 10**6))
    if kind == "array":
        return st.lists(from_schema(doc, schema["items"]), max_size=schema.get("maxItems", 10))
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(doc, v) for k, v in props.items() if k in required},
            optional={k: from_schema(doc, v) for k, v in props.items() if k not in required},
        )
    if kind == "boolean":
        return st.booleans()
    return json_values


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict]]:
    from consentgate.config import load_settings

    cfg: Settings = load_settings(
        None,
        environ={
            "CONSENTGATE_DATA_DIR": str(tmp_path_factory.mktemp("openapi")),
            "CONSENTGATE_SECRET_KEYS": "openapi-test-key-0123456789",
        },
    )
    cfg.sites = [Site(id="main", origins=["https://allowed.example"])]
    cfg.max_body_bytes = 2048
    with TestClient(create_app(cfg), base_url="http://testserver") as client:
        doc = client.get("/_consent/openapi.json").json()
        yield client, doc


def check(doc: dict[str, Any], path: str, method: str, response: Any) -> None:
    assert response.status_code < 500, response.text
    responses = doc["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in responses, f"{method.upper()} {path} -> undocumented {status}: {response.text}"
    spec = responses[status]
    content = spec.get("content", {})
    if "application/json" in content:
        assert response.headers["content-type"].startswith("application/json")
        problems = list(errors(doc, content["application/json"]["schema"], response.json()))
        assert not problems, problems
    for header in spec.get("headers", {}):
        assert header.lower() in response.headers
    if not content:
        assert response.content == b""


def test_document_shape(server: tuple[TestClient, dict]) -> None:
    _, doc = server
    assert doc["openapi"].startswith("3.1")
    assert {API, "/_consent/openapi.json", "/_consent/healthz", "/_consent/metrics"} <= set(
        doc["paths"]
    )
    assert set(doc["paths"][API]) == {"get", "post", "delete", "options"}


def test_simple_endpoints_match(server: tuple[TestClient, dict]) -> None:
    client, doc = server
    for path in ("/_consent/openapi.json", "/_consent/healthz", "/_consent/metrics"):
        check(doc, path, "get", client.get(path))


def consistent(body: dict[str, Any]) -> bool:
    granted = set(body.get("granted", [])) | {"necessary"}
    method = body["method"]
    if method in ("opt_out", "acknowledge"):
        return False  # only in opt-out / notice regimes; the test site is opt-in
    if method == "custom":
        return "granted" in body
    if method == "accept_all":
        return "granted" not in body or granted == set(CATEGORIES)
    return granted == {"necessary"}


def language_ok(body: dict[str, Any]) -> bool:
    lang = body.get("language", "")
    return not lang or len(lang) <= 35


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_generated_requests_never_5xx_and_match_the_document(
    server: tuple[TestClient, dict], data: st.DataObject
) -> None:
    client, doc = server
    request_schema = doc["components"]["schemas"]["ConsentRequest"]
    method = data.draw(st.sampled_from(["get", "post", "delete", "options"]), label="method")
    headers: dict[str, str] = {}
    for name in ("origin", "cookie", "sec-gpc", "x-forwarded-for", "referer", "user-agent"):
        if data.draw(st.integers(0, 3), label=f"has {name}"):
            continue  # most requests carry few of these headers
        value = data.draw(
            st.none()
            | st.sampled_from(
                {
                    "origin": [
                        "https://allowed.example",
                        "https://evil.example",
                        "null",
                        "http://testserver",
                    ],
                    "cookie": ["consentgate=garbage", "consentgate=", "a=b; consentgate=x.y.z"],
                    "sec-gpc": ["1", "0"],
                    "x-forwarded-for": ["203.0.113.9, 10.0.0.1", "::1", "not-an-ip"],
                    "referer": ["https://allowed.example/p?q=1", "javascript:x", "http://[::1"],
                    "user-agent": ["Mozilla/5.0"],
                }[name]
            )
            | header_text,
            label=name,
        )
        if value is not None:
            headers[name] = value
    body_bytes: bytes | None = None
    valid = False
    if method == "post":
        kind = data.draw(st.sampled_from(["schema", "mutated", "json", "bytes"]), label="kind")
        if kind == "schema":
            body: Any = data.draw(from_schema(doc, request_schema), label="body")
        elif kind == "mutated":
            body = data.draw(from_schema(doc, request_schema), label="body")
            body[data.draw(st.sampled_from([*request_schema["properties"], "x"]))] = data.draw(
                json_values
            )
        elif kind == "json":
            body = data.draw(json_values, label="body")
        if kind == "bytes":
            body_bytes = data.draw(st.binary(max_size=300), label="raw")
        else:
            body_bytes = json.dumps(body).encode()
            valid = (
                not list(errors(doc, request_schema, body))
                and consistent(body)
                and language_ok(body)
            )
        content_type = data.draw(
            st.sampled_from(
                ["application/json", "application/json; charset=utf-8", "text/plain", None]
            )
            | header_text,
            label="content-type",
        )
        if content_type is not None:
            headers["content-type"] = content_type
        valid = valid and content_type in ("application/json", "application/json; charset=utf-8")
    if method == "options":
        headers["access-control-request-method"] = "POST"
    response = client.request(method.upper(), API, content=body_bytes, headers=headers)
    check(doc, API, method, response)
    origin_ok = headers.get("origin") in (None, "https://allowed.example", "http://testserver")
    if method == "post" and valid and origin_ok:
        assert response.status_code == 201, (body_bytes, headers, response.text)
    if method == "post" and not valid:
        assert response.status_code >= 400
