"""Retention run: purge every configured site, once or on a daily timer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from ..config import Settings
from ..store.base import AuditAction, ConsentStore, StoreError
from .columns import format_time
from .retention import CheckpointPlan, cutoff

__all__ = ["DAY", "purge_loop", "purge_sites", "start_daily_purge", "stop"]

DAY = 86400.0
log = logging.getLogger("consentgate.audit")


async def purge_sites(
    store: ConsentStore,
    settings: Settings,
    *,
    actor: str = "scheduler",
    now: datetime | None = None,
    site_id: str | None = None,
) -> dict[str, int]:
    """Delete records past each site's retention; returns ``{site_id: deleted}``.
    Records of sites no longer configured are kept (their retention is unknown)."""
    now = now or datetime.now(UTC)
    plan = CheckpointPlan(settings.secret_keys, now)
    deleted: dict[str, int] = {}
    for site in settings.sites:
        if site_id is not None and site.id != site_id:
            continue
        before = cutoff(site, now)
        deleted[site.id] = await store.purge(site.id, before, plan)
    await store.log_action(
        AuditAction(
            now,
            actor,
            "purge",
            {
                "deleted": deleted,
                "cutoffs": {
                    s.id: format_time(cutoff(s, now))
                    for s in settings.sites
                    if site_id is None or s.id == site_id
                },
            },
        )
    )
    return deleted


async def purge_loop(
    store: ConsentStore, settings: Settings, *, first_delay: float = 60.0, interval: float = DAY
) -> None:
    """Purge ``first_delay`` seconds after start-up, then every ``interval``.
    Errors are logged and retried at the next tick; cancelling stops the loop."""
    delay = first_delay
    while True:
        await asyncio.sleep(delay)
        delay = interval
        try:
            deleted = await purge_sites(store, settings)
        except StoreError as exc:
            log.warning("retention purge failed: %s", exc)
            continue
        if any(deleted.values()):
            log.info("retention purge deleted %s", deleted)


def start_daily_purge(store: ConsentStore, settings: Settings) -> asyncio.Task[None]:
    """The server's retention task (started and cancelled by the app's lifespan)."""
    return asyncio.create_task(purge_loop(store, settings), name="consentgate-retention")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
