"""The ``consentgate`` command line.

User mistakes raise :class:`click.UsageError` / :class:`click.BadParameter` (exit 2)
naming the problem; integrity failures (``verify``) exit 1.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from .config import ConfigError, Settings, load_settings

__all__ = ["cli", "main"]


class DefaultGroup(click.Group):
    """``consentgate`` alone runs ``serve``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h", "--version")):
            args = ["serve", *args]
        return super().parse_args(ctx, args)


def settings_from(config: str | None, *, create_secret: bool = True, **overrides: Any) -> Settings:
    """Load settings, turning a ConfigError into a usage error (exit 2).

    ``create_secret=False``: nothing is written to disk (no data directory, no
    generated secret); ``secret_keys`` is then empty when none exists yet."""
    try:
        return load_settings(config, overrides=overrides, create_secret=create_secret)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from . import __version__
    from .accelerators import accelerators

    click.echo(f"consentgate {__version__}")
    for acc in accelerators():
        click.echo(f"  {acc.name} ({acc.module}): {acc.why}")
    ctx.exit()


config_option = click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="CONSENTGATE_CONFIG",
    help="TOML config file.",
)
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    help="Data directory (default ./consentgate-data).",
)
database_option = click.option("--database", help="sqlite:///PATH or postgresql://...")


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and whether each compiled accelerator is active, then exit.",
)
def cli() -> None:
    """consentgate: cookie consent that blocks trackers server-side.

    Run with no command to serve on embedded defaults.
    """


@cli.command()
@config_option
@click.option("--upstream", help="Proxy this site (http://host:port).")
@click.option("--host", help="Listen address (default 127.0.0.1).")
@click.option("--port", type=int, help="Listen port (default 8000).")
@data_dir_option
@database_option
@click.option("--workers", type=click.IntRange(1, 64), help="Worker processes (default 1).")
def serve(
    config: str | None,
    upstream: str | None,
    host: str | None,
    port: int | None,
    data_dir: str | None,
    database: str | None,
    workers: int | None,
) -> None:
    """Serve the banner, the consent API and the sites: each one proxied (it has an
    upstream), script-tag (no upstream: consentgate's endpoints only), or the built-in
    demo (no config and no --upstream).

    Prints the database, data directory, accelerators and each site's mode; a listen
    address that is busy or not this machine's exits 2 before anything is written."""
    from .server import run

    settings = settings_from(
        config,
        create_secret=False,  # run() creates it once the port is known to be free
        upstream=upstream,
        host=host,
        port=port,
        data_dir=data_dir,
        database=database,
        workers=workers,
    )
    run(settings)


from .commands import register_all  # noqa: E402

register_all(cli)


def main() -> None:
    try:
        cli(prog_name="consentgate")
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)
