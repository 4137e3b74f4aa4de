"""``consentgate rewrite``: what a visitor with a given consent would receive.

Reads a page on stdin, writes the rewritten page on stdout. ``--consent all
--no-banner`` gives the input back byte for byte.
"""

from __future__ import annotations

import sys
import time

import click

from ..cli import config_option, settings_from
from ..config import ConfigError, Site
from ..consent import CATEGORIES, Consent, parse_categories

__all__ = ["parse_consent", "register"]

_UNUSED_KEY = "rewrite-signs-nothing-0000000000"


def parse_consent(value: str) -> frozenset[str]:
    """``none``, ``all`` or a comma-separated list of categories -> the granted set."""
    spec = value.strip().lower()
    if spec == "none":
        return frozenset({"necessary"})
    if spec == "all":
        return frozenset(CATEGORIES)
    parts = [p.strip() for p in spec.split(",")]
    if not all(parts):
        raise click.BadParameter(f"empty category in {value!r}; use e.g. statistics,marketing")
    if "none" in parts or "all" in parts:
        raise click.BadParameter(f"'none' and 'all' cannot be combined with categories: {value!r}")
    try:
        return parse_categories(parts)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _site(config: str | None, site_id: str | None) -> tuple[Site, str]:
    settings = settings_from(config, secret_keys=[_UNUSED_KEY])
    if site_id is None:
        return settings.sites[0], settings.prefix
    try:
        return settings.site(site_id), settings.prefix
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--site") from None


def register(cli: click.Group) -> None:
    @cli.command("rewrite")
    @click.option(
        "--consent",
        "consent_spec",
        default="none",
        show_default=True,
        help="none, all, or categories such as statistics,marketing.",
    )
    @click.option("--no-banner", is_flag=True, help="Do not inject the banner snippet.")
    @click.option(
        "--chunk-size",
        type=click.IntRange(min=1),
        default=65536,
        show_default=True,
        help="Feed the streaming rewriter in pieces of this many bytes.",
    )
    @config_option
    @click.option("--site", "site_id", help="Site id from the config (default: the first).")
    def rewrite(
        consent_spec: str,
        no_banner: bool,
        chunk_size: int,
        config: str | None,
        site_id: str | None,
    ) -> None:
        """Rewrite an HTML page from stdin for a visitor with the given consent."""
        from ..catalog import CatalogError, load_catalog
        from ..rewriter import RewritePolicy, StreamRewriter

        granted = parse_consent(consent_spec)
        site, prefix = _site(config, site_id)
        try:
            policy = RewritePolicy.for_site(site, granted, load_catalog(site))
        except CatalogError as exc:
            raise click.UsageError(f"site {site.id!r} services: {exc}") from None
        snippet = None
        if not no_banner:
            snippet = _snippet(config, site, prefix, granted, consent_spec)
        rw = StreamRewriter(policy, snippet)
        stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
        while chunk := stdin.read(chunk_size):
            stdout.write(rw.feed(chunk))
        stdout.write(rw.finish())
        stdout.flush()


def _snippet(config: str | None, site: Site, prefix: str, granted: frozenset[str], spec: str):  # type: ignore[no-untyped-def]
    """The banner's head snippet, built the way the server builds it."""
    from ..consent import ConsentCodec
    from ..injection import head_snippet_for
    from ..metrics import Metrics
    from ..visit import Runtime

    settings = settings_from(config, secret_keys=[_UNUSED_KEY])
    runtime = Runtime(
        settings=settings,
        codec=ConsentCodec([_UNUSED_KEY]),
        store=None,  # type: ignore[arg-type]  # nothing is stored by `rewrite`
        metrics=Metrics(),
    )
    consent = None
    if spec.strip().lower() != "none":
        now = int(time.time())
        consent = Consent(
            consent_id="cli",
            granted=granted,
            policy_version=site.policy_version,
            given_at=now,
            expires_at=now + site.lifetime_seconds,
            site_id=site.id,
        )
    return head_snippet_for(runtime, site, consent, None)
