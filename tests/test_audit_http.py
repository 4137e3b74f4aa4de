"""The admin/auditor HTTP API: token roles, logging of actions, streamed export,
the visitor's receipt; tokens never reach a log."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import httpx2 as httpx
import pytest

from consentgate.app import ConsentGateApp
from consentgate.audit import tokens as tok
from consentgate.audit.formats import read_rows
from consentgate.audit.manifest import Manifest, check_export
from tests import support
from tests.audit_support import KEYS, post_consents

pytestmark = pytest.mark.both_backends

API = "/_consent/admin/api"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def tokens(app: ConsentGateApp) -> dict[str, str]:
    store = app.runtime.store
    _, admin = await tok.issue(store, "admin", "ops")
    _, auditor = await tok.issue(store, "auditor", "dpo")
    return {"admin": admin, "auditor": auditor}


async def test_roles_are_enforced(
    client: httpx.AsyncClient, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    made = await post_consents(client, 6)
    cid = made[1]["consent_id"]
    admin, auditor = bearer(tokens["admin"]), bearer(tokens["auditor"])

    # no token, a malformed one, an unknown one: 401 with a Bearer challenge
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        bearer("nope"),
        bearer(tokens["admin"][:-2] + "xx"),
    ):
        r = await client.get(f"{API}/export", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["error"]["code"] == "unauthorized"

    # the auditor exports and looks subjects up ...
    assert (await client.get(f"{API}/export", headers=auditor)).status_code == 200
    r = await client.get(f"{API}/subjects/{cid}", headers=auditor)
    assert r.status_code == 200 and r.json()["records"][0]["consent_id"] == cid
    r = await client.get(f"{API}/subjects/{cid}/export", headers=auditor)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    # ... but cannot create tokens, list them, erase or read the action log: 403
    r = await client.post(f"{API}/tokens", json={"role": "admin"}, headers=auditor)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert (await client.get(f"{API}/tokens", headers=auditor)).status_code == 403
    assert (await client.post(f"{API}/subjects/{cid}/erase", headers=auditor)).status_code == 403
    assert (await client.get(f"{API}/actions", headers=auditor)).status_code == 403

    # the admin can; a new token works at once and stops working when revoked
    r = await client.post(f"{API}/tokens", json={"role": "auditor", "name": "ext"}, headers=admin)
    assert r.status_code == 201
    new = r.json()
    assert new["token"].startswith("cgt_") and new["role"] == "auditor"
    assert (
        await client.get(f"{API}/subjects/{cid}", headers=bearer(new["token"]))
    ).status_code == 200
    listed = (await client.get(f"{API}/tokens", headers=admin)).json()["tokens"]
    assert {t["token_id"] for t in listed} >= {new["token_id"]}
    assert all("token" not in t and "token_hash" not in t for t in listed)
    r = await client.delete(f"{API}/tokens/{new['token_id']}", headers=admin)
    assert r.status_code == 200
    assert (
        await client.get(f"{API}/subjects/{cid}", headers=bearer(new["token"]))
    ).status_code == 401
    assert (
        await client.delete(f"{API}/tokens/{new['token_id']}", headers=admin)
    ).status_code == 404

    r = await client.post(f"{API}/tokens", json={"role": "root"}, headers=admin)
    assert r.status_code == 422
    r = await client.post(f"{API}/tokens", content=b"{", headers=admin)
    assert r.status_code == 400

    r = await client.post(f"{API}/subjects/{cid}/erase", headers=admin)
    assert r.status_code == 200 and r.json()["erased"] >= 1
    after = (await client.get(f"{API}/subjects/{cid}", headers=auditor)).json()["records"]
    assert all(x["erased"] and x["user_agent"] == "" for x in after)

    # every export and subject action was logged with who, what and when
    actions = (await client.get(f"{API}/actions", headers=admin)).json()["actions"]
    auditor_id = tok.parse_token(tokens["auditor"])
    admin_id = tok.parse_token(tokens["admin"])
    seen = [(a["actor"], a["action"]) for a in actions]
    assert (f"token:{auditor_id}", "export") in seen
    assert (f"token:{auditor_id}", "subject.show") in seen
    assert (f"token:{auditor_id}", "subject.export") in seen
    assert (f"token:{admin_id}", "subject.erase") in seen
    assert (f"token:{admin_id}", "token.create") in seen
    assert all(a["at"].endswith("Z") for a in actions)
    subject = next(a for a in actions if a["action"] == "subject.show")
    assert subject["detail"]["consent_id"] == cid

    # actions are named in the log by token id; no token ever reached a log record
    text = caplog.text
    assert f"token:{auditor_id} (auditor) export" in text
    for secret in (tokens["admin"], tokens["auditor"], new["token"]):
        assert secret not in text
        assert secret.split("_", 2)[2] not in text


async def test_http_export_streams_with_a_signed_manifest(
    client: httpx.AsyncClient, tokens: dict[str, str], app: ConsentGateApp, tmp_path: Path
) -> None:
    await post_consents(client, 8)
    auditor = bearer(tokens["auditor"])
    for fmt in ("csv", "jsonl"):
        r = await client.get(
            f"{API}/export",
            params={"format": fmt, "bom": "1" if fmt == "csv" else "0"},
            headers=auditor,
        )
        assert r.status_code == 200
        assert r.headers["content-type"].startswith(
            "text/csv" if fmt == "csv" else "application/x-ndjson"
        )
        export_id = r.headers["x-consentgate-export-id"]
        m = await client.get(f"{API}/exports/{export_id}/manifest", headers=auditor)
        assert m.status_code == 200
        manifest = Manifest.from_json(m.text)
        assert manifest.export_id == export_id and manifest.rows == 8 + 3 + 2
        path = tmp_path / manifest.file
        path.write_bytes(r.content)
        assert check_export(path, manifest, KEYS.split(",")).ok
        path.write_bytes(r.content.replace(b"198.51.", b"198.50.", 1))
        assert not check_export(path, manifest, KEYS.split(",")).ok

    r = await client.get(
        f"{API}/export", params={"site": "demo", "method": "withdraw"}, headers=auditor
    )
    rows = [row for _, row in read_rows(io.StringIO(r.text), "jsonl")]
    assert rows and all(x["method"] == "withdraw" for x in rows)
    for bad in (
        {"format": "xml"},
        {"since": "tomorrow"},
        {"method": "bribe"},
        {"colour": "red"},
        {"format": "jsonl", "bom": "1"},
    ):
        r = await client.get(f"{API}/export", params=bad, headers=auditor)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_parameter", bad
    r = await client.get(f"{API}/exports/nope/manifest", headers=auditor)
    assert r.status_code == 404


async def test_visitor_receipt(client: httpx.AsyncClient) -> None:
    banner = await client.get("/_consent/banner.js", headers={"Accept-Encoding": "identity"})
    second = await client.get("/_consent/banner.json")  # the second layer's texts
    more = re.search(r'"m":"([^"]+)"', banner.text)  # and its code, banner-more.js
    assert more is not None
    code = await client.get(more.group(1))
    assert "/receipt" in code.text and "Download my consent records" in second.text
    r = await client.get("/_consent/api/consent/receipt")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_consent"
    r = await client.post(
        "/_consent/api/consent",
        json={"method": "accept_all"},
        headers={"user-agent": "ReceiptUA/1"},
    )
    cid = r.json()["consent_id"]
    await client.post(
        "/_consent/api/consent",
        json={"method": "reject_all"},
        headers={"user-agent": "ReceiptUA/1"},
    )
    r = await client.get("/_consent/api/consent/receipt")
    assert r.status_code == 200
    assert r.headers["content-disposition"] == f'attachment; filename="consent-receipt-{cid}.json"'
    doc = r.json()
    assert doc["consent_id"] == cid
    assert [x["method"] for x in doc["records"]] == ["accept_all", "reject_all"]
    assert doc["records"][0]["user_agent"] == "ReceiptUA/1"
    client.cookies.set("consentgate", client.cookies["consentgate"][:-3] + "abc")
    assert (await client.get("/_consent/api/consent/receipt")).status_code == 404


def test_tokens_never_reach_the_server_log_or_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"CONSENTGATE_SECRET_KEYS": KEYS}
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "consentgate",
            "tokens",
            "create",
            "--role",
            "auditor",
            "--data-dir",
            str(data),
        ],
        env=support.cli_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip()
    assert token.startswith("cgt_") and token not in created.stderr
    with support.consentgate_server("--data-dir", str(data), env=env) as (base, proc):
        r = httpx.post(base + "/_consent/api/consent", json={"method": "accept_all"})
        assert r.status_code == 201
        assert (
            httpx.get(base + "/_consent/admin/api/export", headers=bearer(token)).status_code == 200
        )
        assert (
            httpx.get(base + "/_consent/admin/api/tokens", headers=bearer(token)).status_code == 403
        )
        assert (
            httpx.get(base + "/_consent/admin/api/export", headers=bearer(token + "x")).status_code
            == 401
        )
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode()
    assert "127.0.0.1" in out  # the server's own output ...
    assert token not in out and token[17:] not in out  # ... never holds the token
    listed = subprocess.run(
        [sys.executable, "-m", "consentgate", "tokens", "list", "--data-dir", str(data)],
        env=support.cli_env(env),
        capture_output=True,
        text=True,
        check=True,
    )
    assert tok.parse_token(token) in listed.stdout and token not in listed.stdout
    raw = (data / "consent.db").read_bytes()
    wal = data / "consent.db-wal"
    raw += wal.read_bytes() if wal.exists() else b""
    assert token.encode() not in raw and token[17:].encode() not in raw
    assert tok.hash_token(token).encode() in raw  # only the hash is stored
