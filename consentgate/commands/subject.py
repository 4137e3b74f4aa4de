"""``consentgate subject show|export|erase CONSENT_ID``: the seeds' rights of
access, portability and erasure, by consent id (see :mod:`consentgate.audit.subjects`)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from ..audit.runner import atomic_file, check_log_exists, cli_store, log_cli_action
from ..audit.subjects import ErasureRefused, erase_subject, subject_document, subject_records
from ..cli import config_option, data_dir_option, database_option, settings_from
from ..config import Settings
from ..consent import CATEGORIES
from ..store import StoreError

__all__ = ["register"]


def _settings(config: str | None, data_dir: str | None, database: str | None) -> Settings:
    if data_dir and not database and not Path(data_dir).is_dir():
        raise click.BadParameter(f"{data_dir} is not a directory", param_hint="--data-dir")
    settings = settings_from(config, data_dir=data_dir, database=database)
    check_log_exists(settings)
    return settings


async def _document(settings: Settings, consent_id: str, action: str) -> dict[str, Any]:
    async with cli_store(settings) as store:
        records = await subject_records(store, consent_id)
        await log_cli_action(store, action, {"consent_id": consent_id, "records": len(records)})
    if not records:
        raise click.ClickException(f"no records for consent id {consent_id!r}")
    return subject_document(consent_id, records)


async def _erase(settings: Settings, consent_id: str) -> tuple[int, int]:
    async with cli_store(settings) as store:
        records = await subject_records(store, consent_id)
        if not records:
            raise click.ClickException(f"no records for consent id {consent_id!r}")
        erased = await erase_subject(store, consent_id, settings.secret_keys)
        await log_cli_action(store, "subject.erase", {"consent_id": consent_id, "records": erased})
    return len(records), erased


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def register(cli: click.Group) -> None:
    @cli.group()
    def subject() -> None:
        """Subject requests by consent id: show, export (portability), erase."""

    def common(f: Any) -> Any:
        f = click.argument("consent_id")(f)
        return config_option(data_dir_option(database_option(f)))

    @subject.command()
    @common
    def show(
        consent_id: str, config: str | None, data_dir: str | None, database: str | None
    ) -> None:
        """Print every record of CONSENT_ID."""
        doc = _run(_document(_settings(config, data_dir, database), consent_id, "subject.show"))
        click.echo(f"consent id {consent_id}: {len(doc['records'])} record(s)")
        for r in doc["records"]:
            granted = ",".join(c for c in CATEGORIES if r[c])
            erased = " [erased]" if r["erased"] else ""
            click.echo(
                f"  #{r['seq']} {r['created_at']} {r['site_id']} {r['event_type']} "
                f"{r['method']} granted={granted} policy={r['policy_version']}{erased}"
            )
            for name in ("page_url", "ip_masked", "user_agent", "region", "language"):
                if r[name]:
                    click.echo(f"      {name}: {r[name]}")

    @subject.command("export")
    @common
    @click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path))
    def export_(
        consent_id: str,
        config: str | None,
        data_dir: str | None,
        database: str | None,
        output: Path | None,
    ) -> None:
        """Write CONSENT_ID's records as one JSON document (data portability)."""
        settings = _settings(config, data_dir, database)
        doc = _run(_document(settings, consent_id, "subject.export"))
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if output is None:
            click.echo(text, nl=False)
        else:
            with atomic_file(output) as fh:
                fh.write(text.encode("utf-8"))

    @subject.command()
    @common
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    def erase(
        consent_id: str, config: str | None, data_dir: str | None, database: str | None, yes: bool
    ) -> None:
        """Erase CONSENT_ID's personal fields (masked IP, user agent, page URL),
        keeping the proof that the decisions were made."""
        settings = _settings(config, data_dir, database)
        if not yes:
            click.confirm(f"Erase the personal fields of consent id {consent_id}?", abort=True)
        try:
            total, erased = _run(_erase(settings, consent_id))
        except ErasureRefused as exc:
            click.echo(f"refused: {exc}", err=True)
            raise SystemExit(1) from None
        click.echo(
            f"erased {erased} of {total} record(s) of {consent_id} "
            f"({total - erased} were erased before)"
        )
