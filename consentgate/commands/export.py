"""``consentgate export``: the consent log as JSON Lines (the auditor tools extend it).

Records stream in ``seq`` order, one JSON object per line with the keys of
:data:`consentgate.store.records.EXPORT_COLUMNS`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import IO

import click

from ..cli import config_option, data_dir_option, database_option, settings_from
from ..config import Settings
from ..store import StoreError, open_store
from ..store.records import export_record

__all__ = ["register"]


def check_log_exists(settings: Settings) -> None:
    """Refuse (exit 2) to read an SQLite log that is not there instead of creating it."""
    if settings.database.startswith("sqlite:///"):
        path = Path(settings.database.removeprefix("sqlite:///"))
        if not path.is_file():
            raise click.UsageError(
                f"no consent log at {path}; pass the server's --data-dir, --config or --database"
            )


async def write_jsonl(settings: Settings, out: IO[str]) -> int:
    count = 0
    async with open_store(settings.database) as store:
        async for stored in store.iter_events():
            out.write(json.dumps(export_record(stored), ensure_ascii=False) + "\n")
            count += 1
    return count


def register(cli: click.Group) -> None:
    @cli.command()
    @config_option
    @data_dir_option
    @database_option
    @click.option(
        "--format",
        "fmt",
        type=click.Choice(["jsonl"]),
        default="jsonl",
        show_default=True,
        help="Output format.",
    )
    @click.option(
        "-o",
        "--output",
        type=click.Path(dir_okay=False, writable=True),
        help="File (default stdout).",
    )
    def export(
        config: str | None,
        data_dir: str | None,
        database: str | None,
        fmt: str,
        output: str | None,
    ) -> None:
        """Export the consent log (every record, in order)."""
        if data_dir and not database and not Path(data_dir).is_dir():
            raise click.BadParameter(f"{data_dir} is not a directory", param_hint="--data-dir")
        settings = settings_from(config, data_dir=data_dir, database=database)
        check_log_exists(settings)
        try:
            if output:
                with open(output, "w", encoding="utf-8") as fh:
                    asyncio.run(write_jsonl(settings, fh))
            else:
                stream = click.get_text_stream("stdout")
                asyncio.run(write_jsonl(settings, stream))
                stream.flush()
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
