"""The OpenAPI document tells the whole truth: it is a valid OpenAPI 3.1 document
(``openapi-spec-validator``), every route the app serves is in it with the same methods
(so a new endpoint cannot be forgotten), and real answers of every endpoint have a
documented status, media type and, for JSON, a body valid against the documented
schema (``openapi-schema-validator``, JSON Schema 2020-12)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from consentgate.app import GPC_WELL_KNOWN, ConsentGateApp, create_app
from consentgate.cli import cli
from consentgate.config import Settings, load_settings

KEYS = "openapi-complete-key-0123456789"
P = "/_consent"


@pytest.fixture(scope="module")
def cg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ConsentGateApp, str, str]]:
    data = tmp_path_factory.mktemp("openapi-complete")
    env = {"CONSENTGATE_DATA_DIR": str(data), "CONSENTGATE_SECRET_KEYS": KEYS}
    tokens = {}
    for role in ("admin", "auditor"):
        made = CliRunner().invoke(cli, ["tokens", "create", "--role", role], env=env)
        assert made.exit_code == 0, made.output
        tokens[role] = made.stdout.strip().splitlines()[0]
    settings: Settings = load_settings(None, environ=env)
    yield create_app(settings), tokens["admin"], tokens["auditor"]


@pytest.fixture(scope="module")
def client(cg: tuple[ConsentGateApp, str, str]) -> Iterator[TestClient]:
    with TestClient(cg[0], base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: TestClient) -> dict[str, Any]:
    r = client.get(P + "/openapi.json")
    assert r.status_code == 200
    return r.json()  # type: ignore[no-any-return]


def served(app: ConsentGateApp) -> dict[str, set[str]]:
    """Every path the app answers (as OpenAPI templates) and its methods (HEAD, which
    Starlette adds to every GET route, left out)."""
    out: dict[str, set[str]] = {}

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(list(route.routes), prefix + route.path)
            elif isinstance(route, Route):
                path = re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", prefix + route.path)
                out.setdefault(path, set()).update(
                    m.lower() for m in (route.methods or ()) if m != "HEAD"
                )
            else:
                raise AssertionError(f"a route the test cannot read: {route!r}")

    walk(list(app.consent_app.routes), app.prefix)
    for path in app.fast_paths:  # hot endpoints served without Starlette's router
        assert app.prefix + path in out, f"fast path {path} without a route"
    out[GPC_WELL_KNOWN] = {"get"}  # answered by ConsentGateApp itself, before the site
    return out


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")


def test_every_served_route_is_documented_and_nothing_else(
    cg: tuple[ConsentGateApp, str, str], doc: dict[str, Any]
) -> None:
    routes = served(cg[0])
    documented = {
        path: {m for m in item if m in ("get", "put", "post", "delete", "options", "patch")}
        for path, item in doc["paths"].items()
    }
    assert set(routes) - set(documented) == set(), "served but not in openapi.json"
    assert set(documented) - set(routes) == set(), "in openapi.json but not served"
    for path, methods in routes.items():
        assert documented[path] == methods, path


def test_every_operation_has_responses_and_an_id(doc: dict[str, Any]) -> None:
    ids = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            ids.append(op["operationId"])
            for status, response in op["responses"].items():
                assert response["description"], (path, method, status)
    assert len(ids) == len(set(ids)), "operationIds are unique"


def check(doc: dict[str, Any], template: str, method: str, response: Any) -> None:
    """The answer's status is documented, with its media type and (JSON) schema."""
    op = doc["paths"][template][method]
    status = str(response.status_code)
    assert status in op["responses"], f"{method.upper()} {template}: undocumented {status}"
    spec = op["responses"][status]
    content = spec.get("content", {})
    if not content:
        assert response.content == b"", (template, status)
        return
    media = response.headers["content-type"].split(";")[0].strip()
    assert media in content, f"{template} {status}: {media} not in {list(content)}"
    if media == "application/json":
        schema = {**content[media]["schema"], "components": doc["components"]}
        OAS31Validator(schema).validate(response.json())
    for header in spec.get("headers", {}):
        if status != "304":
            assert header.lower() in response.headers, (template, header)


def test_visitor_endpoints_answer_as_documented(client: TestClient, doc: dict[str, Any]) -> None:
    check(doc, P + "/api/consent/receipt", "get", client.get(P + "/api/consent/receipt"))
    made = client.post(P + "/api/consent", json={"method": "accept_all"})
    check(doc, P + "/api/consent", "post", made)
    receipt = client.get(P + "/api/consent/receipt")
    check(doc, P + "/api/consent/receipt", "get", receipt)
    assert receipt.json()["records"][0]["consent_id"] == made.json()["consent_id"]
    check(doc, GPC_WELL_KNOWN, "get", client.get(GPC_WELL_KNOWN))
    check(doc, P + "/healthz", "get", client.get(P + "/healthz"))
    check(doc, P + "/metrics", "get", client.get(P + "/metrics"))
    client.cookies.clear()


@pytest.mark.parametrize(
    "path",
    [
        "/banner.js",
        "/banner.json",
        "/banner-more.js",
        "/banner.css",
        "/declaration",
        "/declaration.js",
    ],
)
def test_assets_answer_as_documented(client: TestClient, doc: dict[str, Any], path: str) -> None:
    first = client.get(P + path, params={"l": "de"})
    check(doc, P + path, "get", first)
    again = client.get(
        P + path, params={"l": "de"}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    check(doc, P + path, "get", again)
    if path != "/banner.css":
        check(doc, P + path, "get", client.get(P + path, params={"site": "nope"}))
    if path == "/banner.js":
        check(doc, P + path, "get", client.get(P + path, params={"r": "maybe"}))


def test_admin_api_answers_as_documented(
    cg: tuple[ConsentGateApp, str, str], client: TestClient, doc: dict[str, Any]
) -> None:
    _, admin, auditor = cg
    a = {"Authorization": f"Bearer {admin}"}
    au = {"Authorization": f"Bearer {auditor}"}
    base = P + "/admin/api"
    consent_id = client.post(P + "/api/consent", json={"method": "reject_all"}).json()["consent_id"]
    client.cookies.clear()

    check(doc, base + "/export", "get", client.get(base + "/export"))  # 401
    export = client.get(base + "/export", params={"format": "csv"}, headers=au)
    check(doc, base + "/export", "get", export)
    check(doc, base + "/export", "get", client.get(base + "/export?format=xml", headers=au))
    manifest = base + "/exports/{export_id}/manifest"
    export_id = export.headers["x-consentgate-export-id"]
    check(doc, manifest, "get", client.get(f"{base}/exports/{export_id}/manifest", headers=au))
    check(doc, manifest, "get", client.get(f"{base}/exports/nope/manifest", headers=au))

    for template in ("/subjects/{consent_id}", "/subjects/{consent_id}/export"):
        url = base + template.replace("{consent_id}", consent_id)
        check(doc, base + template, "get", client.get(url, headers=au))
        missing = base + template.replace("{consent_id}", "nobody")
        check(doc, base + template, "get", client.get(missing, headers=au))
    erase = base + "/subjects/{consent_id}/erase"
    check(doc, erase, "post", client.post(erase.replace("{consent_id}", consent_id), headers=au))
    check(doc, erase, "post", client.post(erase.replace("{consent_id}", consent_id), headers=a))
    check(doc, erase, "post", client.post(erase.replace("{consent_id}", "nobody"), headers=a))

    tokens = base + "/tokens"
    check(doc, tokens, "get", client.get(tokens, headers=a))
    created = client.post(tokens, json={"role": "auditor", "name": "ci"}, headers=a)
    check(doc, tokens, "post", created)
    check(doc, tokens, "post", client.post(tokens, json={"role": "root"}, headers=a))
    check(doc, tokens, "post", client.post(tokens, content=b"{", headers=a))
    revoke = base + "/tokens/{token_id}"
    token_id = created.json()["token_id"]
    check(doc, revoke, "delete", client.delete(f"{tokens}/{token_id}", headers=a))
    check(doc, revoke, "delete", client.delete(f"{tokens}/{token_id}", headers=a))
    check(doc, base + "/actions", "get", client.get(base + "/actions", headers=a))
    check(doc, base + "/actions", "get", client.get(base + "/actions", headers=au))  # 403


def test_console_pages_answer_as_documented(
    cg: tuple[ConsentGateApp, str, str], client: TestClient, doc: dict[str, Any]
) -> None:
    _, admin, _ = cg
    a = P + "/admin"

    def get(path: str, template: str | None = None, **params: str) -> Any:
        r = client.get(a + path, params=params, follow_redirects=False)
        check(doc, template or a + path, "get", r)
        return r

    client.cookies.clear()
    assert get("").status_code == 303 and get("/").status_code == 303
    assert get("/dashboard").status_code == 303  # no session: to sign-in
    assert get("/console.css").status_code == 200
    form = get("/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    wrong = client.post(
        a + "/sign-in", data={"csrf": csrf.group(1), "token": "cgt_nope"}, follow_redirects=False
    )
    check(doc, a + "/sign-in", "post", wrong)
    csrf = re.search(r'name="csrf" value="([^"]+)"', wrong.text)
    assert wrong.status_code == 401 and csrf is not None
    signed = client.post(
        a + "/sign-in", data={"csrf": csrf.group(1), "token": admin}, follow_redirects=False
    )
    check(doc, a + "/sign-in", "post", signed)
    assert signed.status_code == 303
    for path in ("/dashboard", "/discovery", "/exports", "/verify", "/manifests", "/tokens"):
        assert get(path).status_code == 200, path
    assert get("/actions").status_code == 200
    assert get("/dashboard", days="nonsense").status_code == 400
    assert get("/lookup", consent_id="nobody").status_code == 404
    assert get("/manifests/nope", a + "/manifests/{export_id}").status_code == 404
    download = get("/exports/download", format="jsonl")
    assert download.status_code == 200
    for path in ("/tokens", "/tokens/revoke", "/lookup/erase", "/verify", "/discovery/classify"):
        denied = client.post(a + path, data={"csrf": "wrong"}, follow_redirects=False)
        check(doc, a + path, "post", denied)
        assert denied.status_code == 403, path
    client.cookies.clear()
