"""Ed25519 proofs: an auditor checks an export with the public key alone, on a machine
with no data directory and no secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from consentgate.audit.keys import KEY_FILE, load_public_key, load_signing_key, verify_signature
from consentgate.chain import head_statement
from consentgate.config import Settings
from tests.audit_support import fill_log, make_settings, run_cli, sql

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path, str]:
    tmp = tmp_path_factory.mktemp("proofs")
    settings = make_settings(tmp)
    fill_log(settings, 12)
    # the key pair is made by `serve` on its first start or by `public-key`; an export,
    # read-only, never makes one
    shown = run_cli(settings, "public-key")
    assert shown.exit_code == 0, shown.output
    out = tmp / "log.csv"
    assert run_cli(settings, "export", "--format", "csv", "-o", str(out)).exit_code == 0
    return settings, out, shown.output.strip()


def elsewhere(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m consentgate ARGS`` from an empty directory with no consentgate
    environment: no data directory, no secret keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONSENTGATE_")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "consentgate", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_public_key_is_kept_in_the_data_dir(exported: tuple[Settings, Path, str]) -> None:
    settings, out, public = exported
    assert public.startswith("ed25519:")
    path = settings.data_dir / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signing_key(settings.data_dir).public_text == public
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    assert manifest["public_key"] == public and manifest["ed25519"]
    assert manifest["heads"] and all(h["ed25519"] for h in manifest["heads"])


def test_verify_export_with_only_the_public_key(
    exported: tuple[Settings, Path, str], tmp_path: Path
) -> None:
    _, out, public = exported
    auditor = tmp_path / "auditor"
    auditor.mkdir()
    for name in (out.name, out.name + ".manifest.json"):
        (auditor / name).write_bytes((out.parent / name).read_bytes())
    ok = elsewhere(auditor, "verify-export", out.name, "--public-key", public)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"ok: {out.name} matches its manifest")
    assert sorted(p.name for p in auditor.iterdir()) == sorted(
        [out.name, out.name + ".manifest.json"]
    ), "verify-export made a data directory"

    # the key may also come from a file
    (auditor / "key.txt").write_text(public + "\n")
    assert elsewhere(auditor, "verify-export", out.name, "--public-key", "key.txt").returncode == 0

    # an edited record: the file's digest and the record's hash both fail
    data = (auditor / out.name).read_bytes().replace(b"198.51.", b"198.52.", 1)
    (auditor / out.name).write_bytes(data)
    bad = elsewhere(auditor, "verify-export", out.name, "--public-key", public)
    assert (
        bad.returncode == 1 and "SHA-256" in bad.stdout and "does not match its hash" in bad.stdout
    )


def test_a_forged_manifest_or_another_key_fails(
    exported: tuple[Settings, Path, str], tmp_path: Path
) -> None:
    _, out, public = exported
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    manifest["rows"] -= 1
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(manifest))
    bad = elsewhere(tmp_path, "verify-export", str(out), "--manifest", str(forged),
                    "--public-key", public)  # fmt: skip
    assert bad.returncode == 1
    assert "Ed25519 signature does not verify" in bad.stdout

    other = load_signing_key(tmp_path / "other").public_text
    assert other != public and load_public_key(other)
    bad = elsewhere(tmp_path, "verify-export", str(out), "--public-key", other)
    assert bad.returncode == 1 and "signed by another key" in bad.stdout


@pytest.mark.parametrize("key", ["ed25519:not-base64!", "ed25519:AAAA", "rsa:xyz", "missing.pem"])
def test_a_bad_public_key_is_a_usage_error(
    exported: tuple[Settings, Path, str], tmp_path: Path, key: str
) -> None:
    _, out, _ = exported
    result = elsewhere(tmp_path, "verify-export", str(out), "--public-key", key)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--public-key" in result.stderr


def test_heads_are_signed_when_written(exported: tuple[Settings, Path, str]) -> None:
    """The log's own chain heads and action head carry Ed25519 signatures made at commit
    time, and the manifest passes those on."""
    settings, out, public = exported
    key = load_public_key(public)
    heads = sql(settings, "SELECT chain_id, chain_seq, hash, ed25519 FROM chain_heads")
    assert heads
    for chain_id, seq, hash_, signature in heads:
        assert verify_signature(key, head_statement(chain_id, seq, hash_), signature)
    count, hash_, signature = sql(settings, "SELECT count, hash, ed25519 FROM action_head")[0]
    assert verify_signature(key, head_statement("audit-actions", count, hash_), signature)
    manifest = json.loads(Path(str(out) + ".manifest.json").read_text())
    stored = {h[0]: h[3] for h in heads}
    assert all(h["ed25519"] == stored[h["chain_id"]] for h in manifest["heads"])
