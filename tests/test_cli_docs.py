"""docs/cli.md is the ``--help`` of every command, generated: this test fails when the
CLI changed and the page did not. Regenerate with
``CONSENTGATE_UPDATE_DOCS=1 python -m pytest tests/test_cli_docs.py``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from consentgate.cli import cli

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
HEADER = """# Command line reference

Generated from the commands' own `--help` by `tests/test_cli_docs.py`, which fails when
this page and the CLI disagree (regenerate with
`CONSENTGATE_UPDATE_DOCS=1 python -m pytest tests/test_cli_docs.py`).
`consentgate` with no command runs `serve`. User mistakes exit with code 2 and a message
naming the problem; `verify` and `verify-export` exit 1 when the log or the file does not
check out.
"""


def _context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    settings = {"terminal_width": 88, "max_content_width": 88, **command.context_settings}
    return click.Context(command, info_name=name, parent=parent, **settings)


def reference() -> str:
    parts = [HEADER]

    def walk(command: click.Command, path: list[str], parent: click.Context | None) -> None:
        ctx = _context(command, path[-1], parent)
        parts.append(f"\n## `{' '.join(path)}`\n\n```text\n{command.get_help(ctx)}\n```\n")
        if isinstance(command, click.Group):
            for name in sorted(command.list_commands(ctx)):
                sub = command.get_command(ctx, name)
                if sub is not None and not sub.hidden:
                    walk(sub, [*path, name], ctx)

    walk(cli, ["consentgate"], None)
    return "".join(parts)


def test_cli_reference_is_current() -> None:
    text = reference()
    if os.environ.get("CONSENTGATE_UPDATE_DOCS") == "1":
        PAGE.write_text(text, encoding="utf-8")
    assert PAGE.read_text(encoding="utf-8") == text, (
        "docs/cli.md is out of date: CONSENTGATE_UPDATE_DOCS=1 python -m pytest "
        "tests/test_cli_docs.py"
    )
