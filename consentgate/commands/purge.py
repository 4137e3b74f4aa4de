"""``consentgate purge``: delete records past each site's retention
(``retention_days``; default consent lifetime + 365 days), leaving signed purge
checkpoints so ``verify`` still passes. The server also does this daily."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import click

from ..audit.columns import format_time
from ..audit.retention import cutoff
from ..audit.runner import DATETIME, check_log_exists, cli_actor, cli_store
from ..audit.scheduler import purge_sites
from ..cli import config_option, data_dir_option, database_option, settings_from
from ..config import ConfigError, Settings
from ..store import EventFilter, StoreError

__all__ = ["register"]


async def _dry_run(settings: Settings, now: datetime, site_id: str | None) -> dict[str, int]:
    async with cli_store(settings) as store:
        return {
            s.id: await store.count(EventFilter(site_id=s.id, until=cutoff(s, now)))
            for s in settings.sites
            if site_id is None or s.id == site_id
        }


async def _purge(settings: Settings, now: datetime, site_id: str | None) -> dict[str, int]:
    async with cli_store(settings) as store:
        return await purge_sites(store, settings, actor=cli_actor(), now=now, site_id=site_id)


def register(cli: click.Group) -> None:
    @cli.command()
    @config_option
    @data_dir_option
    @database_option
    @click.option("--site", help="Only this site id.")
    @click.option("--dry-run", is_flag=True, help="Count what would go; delete nothing.")
    @click.option(
        "--now", type=DATETIME, hidden=True, help="Pretend it is this time (for rehearsals)."
    )
    def purge(
        config: str | None,
        data_dir: str | None,
        database: str | None,
        site: str | None,
        dry_run: bool,
        now: datetime | None,
    ) -> None:
        """Delete consent records past their site's retention period."""
        if data_dir and not database and not Path(data_dir).is_dir():
            raise click.BadParameter(f"{data_dir} is not a directory", param_hint="--data-dir")
        settings = settings_from(config, data_dir=data_dir, database=database)
        if site is not None:
            try:
                settings.site(site)
            except ConfigError as exc:
                raise click.BadParameter(str(exc), param_hint="--site") from None
        check_log_exists(settings)
        moment = now or datetime.now(UTC)
        try:
            counts = asyncio.run(
                _dry_run(settings, moment, site) if dry_run else _purge(settings, moment, site)
            )
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        verb = "would delete" if dry_run else "deleted"
        for site_id, n in counts.items():
            before = format_time(cutoff(settings.site(site_id), moment))
            click.echo(f"{site_id}: {verb} {n} record(s) created before {before}")
