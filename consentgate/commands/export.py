"""``consentgate export``: the consent log as CSV or JSON Lines, with a signed manifest.

Streams in ``seq`` order with constant memory (see :mod:`consentgate.audit.export`).
``-o FILE`` is written atomically (temporary file + rename) and gets
``FILE.manifest.json`` next to it; ``--manifest`` names another place (also for
stdout). Progress goes to stderr, only when stderr is a terminal.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO

import click

from ..audit.export import ExportStats, export_stream, filter_json
from ..audit.formats import FORMATS
from ..audit.keys import KEY_FILE, SigningKey, signing_key_for
from ..audit.manifest import Manifest, manifest_path
from ..audit.runner import (
    DATETIME,
    atomic_file,
    check_log_exists,
    cli_store,
    log_cli_action,
    require_keys,
)
from ..cli import config_option, data_dir_option, database_option, settings_from
from ..config import Settings
from ..consent import Method
from ..regions import REGIMES, region_filter
from ..store import EventFilter, StoreError

__all__ = ["register", "run_export"]

#: Encoded batches that may wait for the disk (each ~2.5 MB of CSV at 5,000 rows).
WRITES_AHEAD = 2


class _Progress:
    """``\\r1,234,567 records (456,789/s)`` on stderr, at most a few times a second."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.start = self.last = time.monotonic()

    def update(self, rows: int, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < 0.25:
            return
        self.last = now
        rate = rows / max(now - self.start, 1e-6)
        of = f" of {self.total:,}" if self.total is not None else ""
        end = "\n" if final else ""
        click.echo(f"\r{rows:,}{of} records ({rate:,.0f}/s)", err=True, nl=False)
        if end:
            click.echo(err=True)


async def run_export(
    settings: Settings,
    flt: EventFilter,
    fmt: str,
    out: IO[bytes],
    *,
    bom: bool = False,
    progress: bool = False,
    file_name: str = "",
) -> Manifest:
    """Write the export to ``out``; returns the signed manifest (also logged)."""
    async with cli_store(settings) as store:
        bar = _Progress(await store.count(flt)) if progress else None
        stats = ExportStats(fmt, bom=bom)
        result: list[Manifest] = []
        # The file is written on a thread of its own (write() releases the GIL), so the
        # disk works while the next batch is read and encoded; at most WRITES_AHEAD
        # batches wait for it, which keeps memory flat.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-writer") as disk:
            pending: deque[Future[int]] = deque()
            async for chunk in export_stream(store, flt, stats, result):
                pending.append(disk.submit(out.write, chunk))
                while len(pending) > WRITES_AHEAD:
                    pending.popleft().result()  # a command: nothing else waits on this loop
                if bar is not None:
                    bar.update(stats.rows)
            while pending:
                pending.popleft().result()
        if bar is not None:
            bar.update(stats.rows, final=True)
        manifest = result[0]
        manifest.file = file_name
        manifest.sign(settings.secret_keys, installation_key(settings))
        await log_cli_action(
            store,
            "export",
            {
                "format": fmt,
                "filters": filter_json(flt),
                "rows": manifest.rows,
                "sha256": manifest.sha256,
                "file": file_name,
            },
        )
    return manifest


def installation_key(settings: Settings) -> SigningKey | None:
    """The installation's Ed25519 key, when the data directory holds one. An export never
    makes one: a read-only command writes nothing, and a key nobody published proves
    nothing (the manifest is then HMAC-signed only, and that is said on stderr)."""
    if (Path(settings.data_dir) / KEY_FILE).is_file():
        return signing_key_for(Path(settings.data_dir))
    click.echo(
        f"note: no {KEY_FILE} in {settings.data_dir}: the manifest is signed with the "
        "secret keys only (pass the server's --data-dir for its Ed25519 signature)",
        err=True,
    )
    return None


def _region_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    try:
        return None if value is None else region_filter(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def register(cli: click.Group) -> None:
    @cli.command()
    @config_option
    @data_dir_option
    @database_option
    @click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
    @click.option("--site", help="Only this site id.")
    @click.option("--since", type=DATETIME, help="Created at or after (ISO 8601, UTC).")
    @click.option("--until", type=DATETIME, help="Created before (ISO 8601, UTC).")
    @click.option("--consent-id", help="Only this consent id (one visitor).")
    @click.option("--method", type=click.Choice([m.value for m in Method]), help="Only this one.")
    @click.option(
        "--region",
        callback=_region_option,
        help='Only this region (DE, US-CA; "" for visitors whose region was unknown).',
    )
    @click.option("--regime", type=click.Choice(REGIMES), help="Only this regime.")
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, path_type=Path),
        help="File, written atomically, plus FILE.manifest.json (default stdout).",
    )
    @click.option(
        "--manifest",
        "manifest_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Where to write the manifest (default FILE.manifest.json; none for stdout).",
    )
    @click.option("--bom", is_flag=True, help="Start the CSV with a UTF-8 BOM (for Excel).")
    def export(
        config: str | None,
        data_dir: str | None,
        database: str | None,
        fmt: str,
        site: str | None,
        since: object,
        until: object,
        consent_id: str | None,
        method: str | None,
        region: str | None,
        regime: str | None,
        output: Path | None,
        manifest_file: Path | None,
        bom: bool,
    ) -> None:
        """Export the consent log (CSV or JSON Lines) with a signed manifest."""
        if data_dir and not database and not Path(data_dir).is_dir():
            raise click.BadParameter(f"{data_dir} is not a directory", param_hint="--data-dir")
        if bom and fmt != "csv":
            raise click.BadParameter("a BOM only applies to --format csv", param_hint="--bom")
        flt = EventFilter(
            site_id=site,
            consent_id=consent_id,
            method=method,
            region=region,
            regime=regime,
            since=since,  # type: ignore[arg-type]
            until=until,  # type: ignore[arg-type]
        )
        if flt.since and flt.until and flt.since >= flt.until:
            raise click.BadParameter("--since must be before --until", param_hint="--since")
        settings = settings_from(config, create_secret=False, data_dir=data_dir, database=database)
        check_log_exists(settings)
        require_keys(settings)
        progress = sys.stderr.isatty()
        try:
            if output is not None:
                with atomic_file(output) as fh:
                    job = run_export(
                        settings, flt, fmt, fh, bom=bom, progress=progress, file_name=output.name
                    )
                    manifest = asyncio.run(job)
                target = manifest_file or manifest_path(output)
            else:
                stdout = sys.stdout.buffer
                manifest = asyncio.run(run_export(settings, flt, fmt, stdout, bom=bom))
                stdout.flush()
                target = manifest_file
            if target is not None:
                with atomic_file(target) as fh:
                    fh.write(manifest.to_json().encode("utf-8"))
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        if output is not None:
            click.echo(f"{manifest.rows} records -> {output} (manifest {target})", err=True)
