"""What the auditor CLI commands share: open the configured log, parse filters,
record the command in the action log, write files atomically."""

from __future__ import annotations

import contextlib
import getpass
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import click

from ..chain import HeadSigner
from ..config import SECRET_FILE, Settings
from ..store import ConsentStore, open_store
from ..store.base import AuditAction
from .keys import existing_signing_key

__all__ = [
    "DATETIME",
    "DateTimeParam",
    "atomic_file",
    "check_log_exists",
    "cli_actor",
    "cli_store",
    "log_cli_action",
    "require_keys",
]


def check_log_exists(settings: Settings) -> None:
    """Refuse (exit 2) to read an SQLite log that is not there instead of creating it."""
    if settings.database.startswith("sqlite:///"):
        path = Path(settings.database.removeprefix("sqlite:///"))
        if not path.is_file():
            raise click.UsageError(
                f"no consent log at {path}; pass the server's --data-dir, --config or --database"
            )


def require_keys(settings: Settings, other: str = "") -> None:
    """Refuse (exit 2) when no secret keys are configured or kept in the data directory:
    a read-only command checks and signs with the installation's keys, never new ones.
    ``other`` names another way out ("pass --public-key KEY, or ")."""
    if not settings.secret_keys:
        raise click.UsageError(
            f"no secret keys to check and sign with: {Path(settings.data_dir) / SECRET_FILE} "
            f"does not exist; {other}pass the installation's --config or --data-dir "
            "(or set CONSENTGATE_SECRET_KEYS)"
        )


@contextlib.asynccontextmanager
async def cli_store(settings: Settings) -> AsyncIterator[ConsentStore]:
    """The configured log, opened with the server's head signer."""
    # heads these tools move (the action chain) are also Ed25519-signed when the key pair
    # exists; a command never makes one as a side effect
    signer = HeadSigner(settings.secret_keys, existing_signing_key(settings.data_dir))
    store = open_store(settings.database, head_signer=signer)
    store.reads_may_block = True  # a command serves nobody else meanwhile
    async with store:
        yield store


def cli_actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"cli:uid{os.getuid()}"


async def log_cli_action(store: ConsentStore, action: str, detail: dict[str, Any]) -> None:
    await store.log_action(AuditAction(datetime.now(UTC), cli_actor(), action, detail))


class DateTimeParam(click.ParamType):
    """``2026-01-31`` or ``2026-01-31T12:00:00`` (UTC unless an offset is given)."""

    name = "datetime"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            self.fail(
                f"{value!r} is not a date or time; use ISO 8601, e.g. 2026-01-31 or "
                "2026-01-31T12:00:00Z",
                param,
                ctx,
            )
        return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


DATETIME = DateTimeParam()


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Write ``path`` via a temporary file in the same directory, fsync, rename.
    On any error the temporary file is removed and ``path`` is left untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
