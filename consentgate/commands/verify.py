"""``consentgate verify`` (the log's integrity) and ``consentgate verify-export FILE``
(a file an auditor received, against its signed manifest).

Both exit 0 when everything checks out, 1 naming the first bad record otherwise,
2 for a usage mistake.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import click

from ..audit.columns import parse_time
from ..audit.keys import PublicKeyError, load_public_key, signing_key_for
from ..audit.manifest import Manifest, check_export, manifest_path
from ..audit.runner import check_log_exists, cli_store, require_keys
from ..audit.verify import VerifyResult, verify_store
from ..cli import config_option, data_dir_option, database_option, settings_from
from ..config import Settings
from ..store import StoreError
from ..store.base import ActionHead, ChainHead, StoredEvent
from ..store.records import export_record

__all__ = ["register"]


async def _verify(
    settings: Settings, earlier: list[ChainHead], earlier_actions: list[ActionHead]
) -> tuple[VerifyResult, StoredEvent | None]:
    async with cli_store(settings) as store:
        result = await verify_store(store, settings.secret_keys, earlier, earlier_actions)
        bad = None
        if result.problem is not None and result.problem.seq is not None:
            async for rec in store.iter_events():
                if rec.seq == result.problem.seq:
                    bad = rec
                    break
                if rec.seq > result.problem.seq:
                    break
        return result, bad


def _earlier_heads(
    paths: tuple[Path, ...], settings: Settings
) -> tuple[list[ChainHead], list[ActionHead]]:
    """The chain heads and action heads listed by earlier exports' manifests (each
    manifest's signature checked)."""
    heads: list[ChainHead] = []
    actions: list[ActionHead] = []
    for path in paths:
        try:
            manifest = Manifest.from_json(path.read_text(encoding="utf-8"))
            at = parse_time(manifest.exported_at)
            listed = [
                ChainHead(
                    str(h["chain_id"]), int(h["chain_seq"]), str(h["hash"]), str(h["signature"]), at
                )
                for h in manifest.heads
            ]
            a = manifest.action_head
            if a is not None:
                actions.append(ActionHead(int(a["count"]), str(a["hash"]), str(a["signature"]), at))
        except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise click.BadParameter(f"{path}: {exc}", param_hint="--against") from None
        if not manifest.signature_ok(settings.secret_keys):
            click.echo(f"FAILED: {path}: the manifest's signature does not verify", err=True)
            sys.exit(1)
        heads.extend(listed)
    return heads, actions


def _record_json(rec: StoredEvent) -> str:
    return json.dumps(export_record(rec), ensure_ascii=False)


def register(cli: click.Group) -> None:
    @cli.command()
    @config_option
    @data_dir_option
    @database_option
    @click.option(
        "--against",
        "against",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="An earlier export's manifest (repeatable): every chain head it lists must "
        "still be in the log, so a removed chain or a rolled-back file is caught too.",
    )
    def verify(
        config: str | None, data_dir: str | None, database: str | None, against: tuple[Path, ...]
    ) -> None:
        """Check the consent log's hash chains and signed heads; exit 1 on the first
        altered, inserted or missing record."""
        if data_dir and not database and not Path(data_dir).is_dir():
            raise click.BadParameter(f"{data_dir} is not a directory", param_hint="--data-dir")
        settings = settings_from(config, create_secret=False, data_dir=data_dir, database=database)
        check_log_exists(settings)
        require_keys(settings)
        earlier, earlier_actions = _earlier_heads(against, settings)
        try:
            result, bad = asyncio.run(_verify(settings, earlier, earlier_actions))
        except (StoreError, sqlite3.DatabaseError) as exc:
            click.echo(f"FAILED: the consent log cannot be read: {exc}", err=True)
            sys.exit(1)
        if result.problem is None:
            click.echo(
                f"ok: {result.checked} records in {result.chains} chain(s) verified "
                f"({result.erased} erased, {result.purged} purged under signed checkpoints), "
                f"{result.actions} audit action(s) chained"
                + (
                    f" ({result.actions_unchained} older unchained)"
                    if result.actions_unchained
                    else ""
                )
                + (
                    f"; all {len(earlier)} head(s) of {len(against)} earlier export(s) found"
                    if against
                    else ""
                )
            )
            return
        click.echo(f"FAILED after {result.checked} good records: {result.problem}")
        if bad is not None:
            click.echo(f"first bad record: {_record_json(bad)}")
        sys.exit(1)

    @cli.command("verify-export")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "--manifest",
        "manifest_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="The export's manifest (default FILE.manifest.json).",
    )
    @click.option(
        "--public-key",
        "public_key",
        metavar="KEY",
        help="The installation's Ed25519 public key (ed25519:..., from `consentgate "
        "public-key`) or a file holding it: check the manifest's Ed25519 signatures "
        "instead of the HMAC ones, with no secret and no data directory.",
    )
    @config_option
    @data_dir_option
    def verify_export(
        file: Path,
        manifest_file: Path | None,
        public_key: str | None,
        config: str | None,
        data_dir: str | None,
    ) -> None:
        """Check an export FILE against its signed manifest: signature, SHA-256, row
        count, time range, and every record's hash."""
        manifest_file = manifest_file or manifest_path(file)
        if not manifest_file.is_file():
            raise click.BadParameter(
                f"no manifest at {manifest_file}; pass --manifest", param_hint="FILE"
            )
        try:
            manifest = Manifest.from_json(manifest_file.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{manifest_file}: {exc}", param_hint="--manifest") from None
        if public_key is not None:
            try:
                key = load_public_key(public_key)
            except PublicKeyError as exc:
                raise click.BadParameter(str(exc), param_hint="--public-key") from None
            check = check_export(file, manifest, public_key=key)
        else:
            settings = settings_from(config, create_secret=False, data_dir=data_dir)
            require_keys(settings, "pass --public-key KEY (from `consentgate public-key`), or ")
            check = check_export(file, manifest, settings.secret_keys)
        if check.ok:
            click.echo(
                f"ok: {file} matches its manifest ({check.rows} records, "
                f"{manifest.first_created_at}..{manifest.last_created_at}, "
                f"sha256 {manifest.sha256})"
            )
            return
        click.echo(f"FAILED: {file}")
        for problem in check.problems[:20]:
            click.echo(f"  {problem}")
        sys.exit(1)

    @cli.command("public-key")
    @config_option
    @data_dir_option
    def public_key_command(config: str | None, data_dir: str | None) -> None:
        """Print the installation's Ed25519 public key (ed25519:<base64>), which signs
        export manifests and chain heads; give it to auditors for `verify-export
        --public-key`. The key pair is made in the data directory on first use."""
        settings = settings_from(config, data_dir=data_dir)
        try:
            key = signing_key_for(settings.data_dir)
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot read the signing key: {exc}") from None
        click.echo(key.public_text)
