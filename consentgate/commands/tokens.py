"""``consentgate tokens create|list|revoke``: API tokens for the admin HTTP API.

The token is printed once by ``create``; only its SHA-256 is stored."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import click

from ..audit import tokens as tok
from ..audit.columns import format_time
from ..audit.runner import cli_store, log_cli_action
from ..cli import config_option, data_dir_option, database_option, settings_from
from ..config import Settings
from ..store import StoreError

__all__ = ["register"]


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


async def _create(settings: Settings, role: str, name: str) -> tuple[str, str]:
    async with cli_store(settings) as store:
        record, token = await tok.issue(store, role, name)
        await log_cli_action(store, "token.create", {"token_id": record.token_id, "role": role})
    return record.token_id, token


async def _list(settings: Settings) -> list[Any]:
    async with cli_store(settings) as store:
        return await store.list_tokens()


async def _revoke(settings: Settings, token_id: str) -> bool:
    async with cli_store(settings) as store:
        done = await store.revoke_token(token_id, datetime.now(UTC))
        if done:
            await log_cli_action(store, "token.revoke", {"token_id": token_id})
    return done


def register(cli: click.Group) -> None:
    @cli.group()
    def tokens() -> None:
        """API tokens (roles admin and auditor) for /_consent/admin/api."""

    def common(f: Any) -> Any:
        return config_option(data_dir_option(database_option(f)))

    @tokens.command()
    @common
    @click.option("--role", type=click.Choice(tok.ROLES), required=True)
    @click.option("--name", default="", help="A label (who or what uses it).")
    def create(
        config: str | None, data_dir: str | None, database: str | None, role: str, name: str
    ) -> None:
        """Create a token and print it (once; it cannot be shown again)."""
        settings = settings_from(config, data_dir=data_dir, database=database)
        token_id, token = _run(_create(settings, role, name))
        click.echo(token)
        click.echo(f"token {token_id} ({role}) created; it is not shown again", err=True)

    @tokens.command("list")
    @common
    def list_(config: str | None, data_dir: str | None, database: str | None) -> None:
        """List tokens (ids and roles; never the tokens)."""
        settings = settings_from(config, data_dir=data_dir, database=database)
        for t in _run(_list(settings)):
            state = f"revoked {format_time(t.revoked_at)}" if t.revoked_at else "active"
            created = format_time(t.created_at)
            click.echo(f"{t.token_id}  {t.role:<8} {state:<36} {created}  {t.name}")

    @tokens.command()
    @common
    @click.argument("token_id")
    def revoke(
        config: str | None, data_dir: str | None, database: str | None, token_id: str
    ) -> None:
        """Revoke TOKEN_ID (the id shown by list, or the whole token)."""
        if token_id.startswith(tok.PREFIX):
            try:
                token_id = tok.parse_token(token_id)
            except tok.TokenError as exc:
                raise click.BadParameter(str(exc), param_hint="TOKEN_ID") from None
        settings = settings_from(config, data_dir=data_dir, database=database)
        if not _run(_revoke(settings, token_id)):
            raise click.BadParameter(f"no active token {token_id!r}", param_hint="TOKEN_ID")
        click.echo(f"token {token_id} revoked")
