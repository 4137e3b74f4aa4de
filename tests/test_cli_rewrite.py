"""``consentgate rewrite``: the PRODUCT.md flags, identity, injection, user errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from consentgate.cli import cli
from tests import support

PAGE = (
    b'<!doctype html><html><head><meta charset="utf-8"><title>t</title>'
    b'<script async src="https://www.googletagmanager.com/gtag/js?id=G-1"></script>'
    b"<script>window.dataLayer=[];function gtag(){dataLayer.push(arguments)}"
    b"gtag('js',new Date());gtag('config','G-1');</script>"
    b"</head><body><iframe src='https://www.youtube.com/embed/x'></iframe>"
    b'<script src="https://connect.facebook.net/en_US/fbevents.js"></script></body></html>'
)


def run(*args: str, data: bytes = PAGE) -> tuple[int, bytes, str]:
    result = CliRunner().invoke(cli, ["rewrite", *args], input=data)
    return result.exit_code, result.stdout_bytes, result.output


def test_all_without_banner_is_byte_identical() -> None:
    code, out, _ = run("--consent", "all", "--no-banner")
    assert code == 0 and out == PAGE


@pytest.mark.parametrize("size", ["1", "7", "4096"])
def test_chunk_size_does_not_change_output(size: str) -> None:
    _, whole, _ = run("--consent", "none")
    code, out, _ = run("--consent", "none", "--chunk-size", size)
    assert code == 0 and out == whole


def test_none_neutralizes_and_injects_once_after_meta_charset() -> None:
    code, out, _ = run()  # --consent none is the default
    assert code == 0
    assert out.count(b"/_consent/banner.js") == 1
    assert out.index(b"/_consent/banner.js") > out.index(b'<meta charset="utf-8">')
    assert out.index(b"/_consent/banner.js") < out.index(b"<title>")
    assert b'<script type="text/plain" data-consent="statistics" async src=' in out
    assert b"data-consentgate-src='https://www.youtube.com/embed/x'" in out
    assert b'type="text/plain" data-consent="marketing" src="https://connect.facebook' in out


def test_granted_category_is_untouched() -> None:
    code, out, _ = run("--consent", "statistics", "--no-banner")
    assert code == 0
    assert b'<script async src="https://www.googletagmanager.com' in out
    assert b"gtag('js',new Date())" in out and out.count(b'data-consent="statistics"') == 0
    assert b'data-consent="marketing"' in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--consent", "stats"], "unknown category 'stats'"),
        (["--consent", "none,marketing"], "cannot be combined"),
        (["--consent", "statistics,"], "empty category"),
        (["--chunk-size", "0"], "--chunk-size"),
        (["--chunk-size", "x"], "--chunk-size"),
        (["--site", "nope"], "no site 'nope'"),
        (["--config", "/nonexistent/consentgate.toml"], "file not found"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_flags_exit_2_naming_the_problem(args: list[str], needle: str) -> None:
    code, _, output = run(*args)
    assert code == 2
    assert needle in output


def test_site_services_from_config(tmp_path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "c.toml"
    config.write_text(
        '[[sites]]\nid = "shop"\n'
        'category_overrides = { "youtube" = "preferences" }\n'
        '[[sites.services]]\nid = "acme"\nname = "Acme"\ncategory = "marketing"\n'
        'urls = ["cdn.acme.test/t.js"]\n'
    )
    page = b"<script src='https://cdn.acme.test/t.js'></script><iframe src=//youtube.com/embed/1>"
    code, out, _ = run("--config", str(config), "--site", "shop", "--no-banner", data=page)
    assert code == 0
    assert b'data-consent="marketing"' in out and b'data-consent="preferences"' in out
    args = ["--config", str(config), "--consent", "preferences", "--no-banner"]
    code, out, _ = run(*args, data=page)
    assert b"<iframe src=//youtube.com/embed/1>" in out


def test_real_process_reads_stdin_and_writes_stdout() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "consentgate", "rewrite", "--consent", "all", "--no-banner"],
        input=PAGE,
        capture_output=True,
        env=support.cli_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == PAGE
