"""``consentgate init [PATH]``: write a commented starter configuration.

The file is generated from :data:`consentgate.config.SERVER_SETTINGS` and
:data:`~consentgate.config.SITE_SETTINGS`, so it always lists every setting with
its default and help text. Every line but the site id is commented out: the file
loads as is, and each ``# key = value`` line can be uncommented unchanged (indented
``#   ...`` lines are examples).
"""

from __future__ import annotations

import json
import os
import secrets
import textwrap
from pathlib import Path
from typing import Any

import click

from ..config import DEFAULT_DATA_DIR, SERVER_SETTINGS, SITE_SETTINGS, Setting

__all__ = ["register", "starter_toml"]

DEFAULT_PATH = "consentgate.toml"

#: Example values for settings whose default is "computed" (None) or a table.
_EXAMPLES: dict[str, Any] = {
    "database": f"sqlite:///{DEFAULT_DATA_DIR}/consent.db",
}
_TABLE_SETTINGS = {"cookies", "services", "texts"}


def toml_value(value: Any) -> str:
    """A TOML literal for the simple values the settings tables hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise TypeError(f"no TOML literal for {value!r}")


def _lines(setting: Setting) -> list[str]:
    if setting.name == "secret_keys":  # a fresh key per file, never a shared placeholder
        value: Any = [secrets.token_urlsafe(32)]
    else:
        value = _EXAMPLES.get(setting.name, setting.default)
    out = textwrap.wrap(setting.help, 88, initial_indent="# ", subsequent_indent="# ")
    out.append(f"# {setting.name} = {toml_value(value)}")
    return out


def starter_toml() -> str:
    lines = [
        "# consentgate configuration, written by `consentgate init`.",
        "# Every setting is listed with its default; uncomment a line to change it.",
        "# Server settings may also come from the environment: CONSENTGATE_SECRET_KEYS",
        "# (comma-separated, newest first), CONSENTGATE_DATABASE, CONSENTGATE_DATA_DIR.",
        "# Run with: consentgate serve --config THIS_FILE",
        "",
        "[server]",
    ]
    for setting in SERVER_SETTINGS:
        lines += _lines(setting)
        lines.append("")
    lines += ["# One [[sites]] table per website.", "[[sites]]"]
    for setting in SITE_SETTINGS:
        if setting.name in _TABLE_SETTINGS:
            continue
        if setting.name == "id":
            lines += [f"# {setting.help}", 'id = "main"', ""]
            continue
        if setting.name == "upstream":
            lines += [
                "# Proxy mode: the origin to forward to. Without it consentgate serves only",
                "# its own endpoints for this site (script-tag mode).",
                '# upstream = ""',
                '#   e.g. upstream = "http://127.0.0.1:8080"',
                "",
            ]
            continue
        lines += _lines(setting)
        lines.append("")
    for setting in SITE_SETTINGS:
        if setting.name in _TABLE_SETTINGS:
            lines += textwrap.wrap(
                f"{setting.name}: {setting.help}", 88, initial_indent="# ", subsequent_indent="# "
            )
    lines += [
        "",
        "# Cookie declaration: one [[sites.cookies]] table per cookie the site sets.",
        "# [[sites.cookies]]",
        '#   name = "_ga"',
        "#   # category: necessary, preferences, statistics, marketing or unclassified",
        '#   category = "statistics"',
        '#   provider = "Google"',
        '#   description = "Registers a unique ID used to generate statistics."',
        '#   created = "When a page is viewed"',
        '#   expiry = "2 years"',
        '#   data_used = "A unique code."',
        "",
        "# Banner text overrides per language:",
        "# [sites.texts.en]",
        '#   title = "We use cookies"',
        "",
    ]
    return "\n".join(lines)


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("path", required=False, default=DEFAULT_PATH, type=click.Path(dir_okay=False))
    @click.option("--force", is_flag=True, help="Overwrite an existing file.")
    def init(path: str, force: bool) -> None:
        """Write a commented starter config to PATH (default consentgate.toml)."""
        target = Path(path)
        if target.exists() and not force:
            raise click.UsageError(f"{target} already exists; pass --force to overwrite it")
        if not target.parent.is_dir():
            raise click.BadParameter(f"directory {target.parent} does not exist", param_hint="PATH")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(target, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(starter_toml())
        click.echo(f"wrote {target}; start with: consentgate serve --config {target}")
