"""``verify`` started from the console: a background job with progress; its result
is kept in the audit action chain (``verify.result``), so it outlives the process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..audit.verify import verify_store
from ..store.base import (
    ApiToken,
    AuditAction,
    ConsentStore,
    EventFilter,
    StoredEvent,
    StoreError,
)
from ..visit import Runtime

__all__ = ["VerifyJob", "VerifyJobs"]


@dataclass
class VerifyJob:
    started_at: datetime
    actor: str
    total: int
    checked: int = 0
    state: str = "running"  # running | ok | failed
    message: str = ""
    finished_at: datetime | None = None

    @property
    def percent(self) -> int:
        if self.state != "running":
            return 100
        return min(99, self.checked * 100 // self.total) if self.total else 0


class _Counting:
    """The store, counting the records ``verify`` reads (the job's progress)."""

    def __init__(self, store: ConsentStore, job: VerifyJob) -> None:
        self._store = store
        self._job = job

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def iter_events(self, flt: EventFilter | None = None) -> AsyncIterator[StoredEvent]:
        async for rec in self._store.iter_events(flt):
            self._job.checked += 1
            yield rec


@dataclass
class VerifyJobs:
    runtime: Runtime
    current: VerifyJob | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self, token: ApiToken) -> VerifyJob:
        """Start a run unless one is running (then that one is returned)."""
        if self.current is not None and self.current.state == "running":
            return self.current
        store = self.runtime.store
        actor = f"token:{token.token_id}"
        job = self.current = VerifyJob(datetime.now(UTC), actor, await store.count())
        await store.log_action(AuditAction(job.started_at, actor, "verify.start", {}))
        self._task = asyncio.create_task(self._run(job), name="consentgate-console-verify")
        return job

    async def _run(self, job: VerifyJob) -> None:
        store = self.runtime.store
        try:
            result = await verify_store(
                _Counting(store, job),  # type: ignore[arg-type]
                self.runtime.settings.secret_keys,
            )
            job.state = "ok" if result.ok else "failed"
            job.message = (
                f"{result.checked} records in {result.chains} chain(s) verified, "
                f"{result.actions} audit action(s) chained"
                if result.ok
                else f"after {result.checked} good records: {result.problem}"
            )
        except Exception as exc:  # the job's outcome is reported, never lost
            job.state, job.message = "failed", f"verify could not run: {exc}"
        job.finished_at = datetime.now(UTC)
        try:
            await store.log_action(
                AuditAction(
                    job.finished_at,
                    job.actor,
                    "verify.result",
                    {"ok": job.state == "ok", "message": job.message, "checked": job.checked},
                )
            )
        except StoreError as exc:  # the page still shows it; say it was not kept
            job.message += f" (not recorded in the action log: {exc})"

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def history(self, limit: int = 20) -> list[AuditAction]:
        found = [a async for a in self.runtime.store.iter_actions() if a.action == "verify.result"]
        return found[::-1][:limit]
