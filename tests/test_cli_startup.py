"""What ``serve`` says when it starts, what it refuses before touching the disk, and
the read-only commands that never create a data directory or a secret."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from consentgate.accelerators import accelerators
from consentgate.audit.keys import KEY_FILE
from consentgate.audit.manifest import Manifest
from consentgate.cli import cli
from consentgate.config import load_settings
from consentgate.server import describe, mask_database
from tests import support

KEY = "startup-test-key-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONSENTGATE_SECRET_KEYS", "CONSENTGATE_DATABASE", "CONSENTGATE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consentgate", *args],
        cwd=cwd,
        env=support.cli_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_busy_port_exits_2_before_anything_is_written(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: the port is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # no consentgate-data, no secret.key, no log


def test_an_address_of_another_machine_exits_2(tmp_path: Path) -> None:
    # TEST-NET-1 (RFC 5737) is never an address of this machine
    result = run_cli("serve", "--host", "192.0.2.1", "--port", "8000", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot listen on 192.0.2.1:8000: the address is not one of this machine's" in (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_startup_names_database_data_dir_accelerators_and_site_modes(tmp_path: Path) -> None:
    config = tmp_path / "cg.toml"
    config.write_text(
        "[server]\n"
        'database = "postgresql://owner:hunter2-secret@db.internal:5432/consent?password=x2"\n'
        "[[sites]]\n"
        'id = "shop"\nhosts = ["shop.example"]\nupstream = "http://127.0.0.1:8080"\n'
        "[[sites]]\n"
        'id = "blog"\n'
    )
    settings = load_settings(config, environ={"CONSENTGATE_SECRET_KEYS": KEY})
    text = describe(settings)
    assert "consent log: postgresql://owner:***@db.internal:5432/consent?password=***" in text, text
    assert "hunter2" not in text and "x2" not in text and KEY not in text
    assert "sites: shop (proxy to http://127.0.0.1:8080), blog (script-tag)" in text
    expected = ", ".join(f"{a.name} {a.why}" for a in accelerators())
    assert f"accelerators: {expected}" in text
    assert f"config: {config}" in text


def test_accelerators_report_active_and_pure_python(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [a.name for a in accelerators()]
    assert names == ["rewriter", "export encoder", "SQLite export reader"]
    if os.environ.get("CONSENTGATE_REQUIRE_SPEEDUPS") == "1":  # CI builds them
        assert all(a.active and a.why == "active" for a in accelerators())
    monkeypatch.setenv("CONSENTGATE_PURE_PYTHON", "1")
    assert [a.why for a in accelerators()] == ["off (CONSENTGATE_PURE_PYTHON=1)"] * 3


def test_version_lists_the_accelerators() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "consentgate 0.1.0"
    assert lines[1:] == [f"  {a.name} ({a.module}): {a.why}" for a in accelerators()]


def test_serve_prints_the_demo_mode_and_accelerators(tmp_path: Path) -> None:
    with support.consentgate_server(cwd=tmp_path) as (_base, proc):
        assert proc.stdout is not None
        head = [proc.stdout.readline().decode() for _ in range(7)]
    text = "".join(head)
    assert "sites: demo (demo)" in text
    assert "accelerators: rewriter " in text and "SQLite export reader " in text
    assert "consent log: sqlite:///" in text
    data = tmp_path / "consentgate-data"
    # the installation's keys are made on the first start, for the auditor's commands
    assert (data / "secret.key").is_file() and (data / KEY_FILE).is_file()


def test_mask_database_leaves_no_password() -> None:
    for url, masked in [
        ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
        ("postgres://:p%40ss@h:5/db", "postgres://:***@h:5/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        (
            "postgresql://h/db?sslmode=require&PASSWORD=s",
            "postgresql://h/db?sslmode=require&PASSWORD=***",
        ),
        ("sqlite:////var/lib/cg/consent.db", "sqlite:////var/lib/cg/consent.db"),
    ]:
        assert mask_database(url) == masked


@pytest.mark.parametrize(
    "args",
    [
        ["export"],
        ["export", "--format", "csv", "-o", "out.csv"],
        ["verify"],
        ["verify-export", "received.jsonl"],
    ],
)
def test_read_only_commands_create_no_data_dir_or_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "received.jsonl").write_text("")
    (tmp_path / "received.jsonl.manifest.json").write_text("{}")
    before = sorted(tmp_path.iterdir())
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert sorted(tmp_path.iterdir()) == before  # no ./consentgate-data, no secret.key

    # an existing data dir with a log but no secret: refused, nothing generated
    data = tmp_path / "data"
    data.mkdir()
    (data / "consent.db").write_bytes(b"")
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(data)])
    assert result.exit_code == 2, result.output
    if args[0] != "verify-export":
        assert "no secret keys to check and sign with" in result.output
    assert sorted(p.name for p in data.iterdir()) == ["consent.db"]


def test_verify_export_names_the_missing_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "received.jsonl").write_text("")
    manifest = Manifest(
        "received.jsonl", "jsonl", False, [], 0, 0, "", "", "", 0, 0, {}, "", 0, {}, []
    )
    (tmp_path / "received.jsonl.manifest.json").write_text(manifest.to_json())
    config = tmp_path / "cg.toml"
    config.write_text('[[sites]]\nid = "main"\n')
    result = CliRunner().invoke(cli, ["verify-export", "received.jsonl", "--config", str(config)])
    assert result.exit_code == 2, result.output
    assert "no secret keys to check and sign with" in result.output
    assert "consentgate-data/secret.key does not exist" in result.output
    assert not (tmp_path / "consentgate-data").exists()


def test_export_of_a_log_given_by_url_makes_no_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keys from the environment, the log by --database (as with PostgreSQL): the
    default ./consentgate-data is not made, not even for an Ed25519 signing key."""
    log = tmp_path / "elsewhere" / "consent.db"
    log.parent.mkdir()
    assert (
        CliRunner()
        .invoke(
            cli, ["verify", "--database", f"sqlite:///{log}"], env={"CONSENTGATE_SECRET_KEYS": KEY}
        )
        .exit_code
        == 2
    )  # no log yet: refused, nothing made
    from tests.test_cli_core import make_log

    make_log(log, 2)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(
        cli,
        ["export", "--database", f"sqlite:///{log}", "-o", "out.jsonl"],
        env={"CONSENTGATE_SECRET_KEYS": KEY},
    )
    assert result.exit_code == 0, result.output
    assert "the manifest is signed with the secret keys only" in result.output
    assert sorted(p.name for p in work.iterdir()) == ["out.jsonl", "out.jsonl.manifest.json"]
    manifest = Manifest.from_json((work / "out.jsonl.manifest.json").read_text())
    assert manifest.signature and not manifest.ed25519 and not manifest.public_key
