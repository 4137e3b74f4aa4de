"""The banner's HTTP side: ``/banner.js``, ``/banner.css``, ``/declaration``,
``/declaration.js``, and :func:`head_snippet`, the markup injected early in ``<head>``.

``banner.js`` is one file per (site, language): the code in ``static/banner/banner.js``,
called with that site's texts, categories, declared cookies and the CSS. It is built once,
compressed once (gzip -9, brotli 11) and served by Accept-Encoding. A versioned URL
(``?v=<hash>``, what :func:`head_snippet` emits) is cached for a year; any other request
gets an ETag and revalidates (``304``).

The visitor's consent is not part of ``banner.js`` (that would defeat caching): in proxy
mode :func:`head_snippet` puts it on the script tag (``data-state``); in script-tag mode
the banner asks ``GET /api/consent``.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import brotli
from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from .catalog import cookie_patterns, cookie_regexes, load_catalog
from .config import Site
from .consent import CATEGORIES, Consent
from .errors import ApiError
from .guard import guard_code, guard_data, guard_script
from .minify import mangle_js, minify_css, minify_js
from .regions import (
    NOTICE,
    OPT_IN,
    OPT_OUT,
    REGIMES,
    UNKNOWN,
    Decision,
    consent_mode_defaults,
    consent_mode_state,
    decide,
    gpc_from_headers,
)
from .texts import banner_hash, pick_language, site_languages, texts_for, translate
from .theme import theme_css
from .visit import Runtime

__all__ = [
    "Asset",
    "BannerAssets",
    "cookie_patterns",
    "cookie_regexes",
    "head_snippet",
    "routes",
]

STATIC = Path(__file__).parent / "static" / "banner"
YEAR = "public, max-age=31536000, immutable"
#: The first view's texts per regime (the opt-in banner, the opt-out notice, the notice),
#: besides :data:`COMMON_TEXTS`. In proxy mode the head snippet knows the visitor's regime
#: and asks for a ``banner.js`` (``r=``) with only its view's; script-tag mode gets all.
VIEW_TEXTS = {
    OPT_IN: frozenset({"title", "text", "accept", "reject", "custom", "close", "gpc"}),
    OPT_OUT: frozenset({"notice_title", "optout_text", "gpc_honored", "dnss", "custom", "ok"}),
    NOTICE: frozenset({"notice_title", "notice_text", "ok"}),
}
#: Every regime's: the privacy link, the error message.
COMMON_TEXTS = frozenset({"privacy", "error"})
#: The floating controls' (re-open, withdraw): shown only after a decision or to a returning
#: visitor, so they come with ``banner-more.js`` (:meth:`BannerAssets.more`), not up front.
MORE_TEXTS = frozenset({"reopen", "withdraw"})
#: Texts only the second layer shows; they load with it (``/banner.json``), not up front.
SECOND_LAYER_TEXTS = frozenset(
    {
        "save",
        "hide",
        "settings",
        "intro",
        "on",
        "cookies",
        "provider",
        "expiry",
        "id",
        "date",
        "receipt",
        "embed",
        "load",
    }
)
#: ``banner.json``'s texts: the second layer's, and the opt-in ones it shows too (buttons,
#: GPC note, the close button), which the other regimes' ``banner.js`` lacks.
DETAIL_TEXTS = SECOND_LAYER_TEXTS | {"accept", "reject", "close", "gpc"}
REVALIDATE = "public, max-age=300"


def _script(name: str) -> str:
    return minify_js(mangle_js((STATIC / name).read_text(encoding="utf-8")))


def markup(text: str) -> str:
    """Text as the banner inserts it, into elements and double-quoted attributes: the server
    escapes it once so the banner carries no escaping code (``'`` stays, no template uses
    single-quoted attributes)."""
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def embed_names(site: Site) -> list[list[str]]:
    """``[host/path, service name]`` per catalog URL pattern of an optional service, longest
    first: a blocked embed's placeholder names what it holds (the banner looks for
    ``.host/path`` in ``.`` + the embed's host and path)."""
    out: dict[str, str] = {}
    for svc in load_catalog(site).services:
        for pattern in svc.urls if svc.category != "necessary" else ():
            stem = pattern.split("*", 1)[0]
            if not stem.startswith("/"):
                out.setdefault(stem, markup(svc.name))
    return sorted(([k, v] for k, v in out.items()), key=lambda kv: -len(kv[0]))


@dataclass(frozen=True)
class Asset:
    """One static body with its precompressed variants."""

    body: bytes
    media_type: str
    version: str
    gz: bytes
    br: bytes

    @classmethod
    def build(cls, body: bytes, media_type: str) -> Asset:
        return cls(
            body=body,
            media_type=media_type,
            version=hashlib.sha256(body).hexdigest()[:16],
            gz=gzip.compress(body, 9, mtime=0),
            br=brotli.compress(body, quality=11),
        )

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    def response(self, request: Request, *, vary: str = "") -> Response:
        immutable = request.query_params.get("v") == self.version
        headers = {
            "Cache-Control": YEAR if immutable else REVALIDATE,
            "ETag": self.etag,
            "Vary": ", ".join(filter(None, ["Accept-Encoding", vary])),
            "Access-Control-Allow-Origin": "*",
            "Cross-Origin-Resource-Policy": "cross-origin",
            "X-Content-Type-Options": "nosniff",
        }
        match = request.headers.get("if-none-match", "")
        if self.version in match or match.strip() == "*":
            return Response(status_code=304, headers=headers)
        body = self.body
        accepted = _accepted_encodings(request.headers.get("accept-encoding", ""))
        if "br" in accepted:
            body, headers["Content-Encoding"] = self.br, "br"
        elif "gzip" in accepted:
            body, headers["Content-Encoding"] = self.gz, "gzip"
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(body))
            return Response(status_code=200, headers=headers, media_type=self.media_type)
        return Response(body, headers=headers, media_type=self.media_type)


def _accepted_encodings(value: str) -> set[str]:
    out = set()
    for part in value.split(","):
        coding, _, params = part.strip().partition(";")
        q = params.strip()
        if q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"):
            continue
        out.add(coding.strip().lower())
    return out


_DECLARATION = Environment(autoescape=True).from_string(
    '<table class="consentgate-declaration" lang="{{ lang }}" dir="{{ dir }}">'
    "<caption>{{ d.caption }}</caption><thead><tr>"
    '{% for k in cols %}<th scope="col">{{ d[k] }}</th>{% endfor %}</tr></thead><tbody>'
    '{% for c in cookies %}<tr><th scope="row"><code>{{ c.name }}</code></th>'
    "<td>{{ c.description }}</td><td>{{ c.created }}</td><td>{{ c.expiry }}</td>"
    "<td>{{ c.data_used }}</td><td>{{ c.provider }}</td><td>{{ cats[c.category] }}</td></tr>"
    "{% endfor %}</tbody></table>"
)
_DECLARATION_COLUMNS = ("name", "description", "created", "expiry", "data_used", "provider")
_COOKIE = (*_DECLARATION_COLUMNS, "category")


class BannerAssets:
    """Builds and caches every banner asset for the configured sites (one per process)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.prefix = runtime.settings.prefix
        self._code = _script("banner.js")
        self._more_code = _script("more.js")
        self._css_text = minify_css((STATIC / "banner.css").read_text(encoding="utf-8"))
        self._more_css = minify_css((STATIC / "more.css").read_text(encoding="utf-8"))
        # /banner.css: the whole stylesheet (the first layer's, then banner-more.js's)
        self.css = Asset.build(
            (self._css_text + self._more_css).encode(), "text/css; charset=utf-8"
        )
        self._cache: dict[tuple[str, ...], Asset] = {}
        self._guards: dict[tuple[str, ...], str] = {}

    def forget(self) -> None:
        """The declarations changed (a classification): build the assets and the
        runtime guard's data again."""
        self._cache.clear()
        self._guards.clear()

    def config(self, site: Site, lang: str, regime: str = "") -> dict[str, Any]:
        """What banner.js is called with (short keys: every byte goes to every visitor).
        The second layer's texts, categories and the cookie deletion patterns are a
        separate file (:meth:`details`), fetched on demand. With a ``regime`` the first
        layer's texts are that regime's view's only; without, every view's."""
        t = texts_for(site, lang)
        second, more = self.details(site, lang), self.more(site, lang)
        keep = VIEW_TEXTS[regime] | COMMON_TEXTS if regime else None
        return {
            "a": self.prefix + "/api/consent",
            "p": markup(site.privacy_policy_url),
            "v": site.policy_version,
            "l": lang,
            "d": t["dir"],
            "h": banner_hash(t),
            "t": {
                k: markup(v)
                for k, v in t["texts"].items()
                if (k in keep if keep else k not in SECOND_LAYER_TEXTS | MORE_TEXTS)
            },
            "x": f"{self.prefix}/banner.json?v={second.version}&l={lang}&site={site.id}",
            "m": f"{self.prefix}/banner-more.js?v={more.version}&l={lang}&site={site.id}",
        }

    def details(self, site: Site, lang: str) -> Asset:
        """The second layer: its texts, and per category name, description and cookies;
        also the cookie patterns (:func:`cookie_regexes`), needed only when a decision
        finds cookies to check, so they are not in every first visit's bytes."""
        key = ("json", site.id, lang)
        if key not in self._cache:
            t = texts_for(site, lang)
            declared: dict[str, list[list[str]]] = {c: [] for c in CATEGORIES}
            for c in site.cookies:
                fields = (c.provider, c.description, c.expiry)
                declared[c.category].append(
                    [markup(c.name), *(markup(translate(t, f)) for f in fields)]
                )
            doc = {
                "t": {k: markup(v) for k, v in t["texts"].items() if k in DETAIL_TEXTS},
                "c": [
                    [c, *(markup(x) for x in t["categories"][c]), declared[c]] for c in CATEGORIES
                ],
                "k": cookie_regexes(site),
                "n": embed_names(site),
            }
            body = json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()
            self._cache[key] = Asset.build(body, "application/json")
        return self._cache[key]

    def more(self, site: Site, lang: str) -> Asset:
        """``banner-more.js``: what a first-time visitor does not need to see the first
        layer and decide (``static/banner/more.js``: the second layer's markup, the floating
        controls, blocked embeds' placeholders), with its CSS and the controls' texts.
        ``banner.js`` loads it on demand, as a script with the page's nonce."""
        key = ("more", site.id, lang)
        if key not in self._cache:
            t = texts_for(site, lang)["texts"]
            texts = json.dumps(
                {k: markup(t[k]) for k in sorted(MORE_TEXTS)},
                ensure_ascii=False,
                separators=(",", ":"),
            )
            css = json.dumps(self._more_css, ensure_ascii=False)
            code = self._more_code.rstrip().rstrip(";")
            body = f"{code}({texts},{css});\n".encode()
            self._cache[key] = Asset.build(body, "text/javascript; charset=utf-8")
        return self._cache[key]

    def banner(self, site: Site, lang: str, regime: str = "", guard: bool = True) -> Asset:
        """``banner.js`` for a site, language and (optional, see :meth:`config`) regime;
        ``guard``: the runtime guard first in it (script-tag mode; the head snippet has it
        inline and asks for ``g=0``)."""
        key = ("js", site.id, lang, regime, str(guard))
        if key not in self._cache:
            cfg = json.dumps(
                self.config(site, lang, regime), ensure_ascii=False, separators=(",", ":")
            )
            css = json.dumps(self._css_text, ensure_ascii=False)
            theme = json.dumps(theme_css(site.theme), ensure_ascii=False)
            code = self._code.rstrip().rstrip(";")
            first = guard_script(self.guard(site), None) + "\n" if guard else ""
            body = f"{first}{code}({cfg},{css},{theme});\n".encode()
            self._cache[key] = Asset.build(body, "text/javascript; charset=utf-8")
        return self._cache[key]

    def guard(self, site: Site) -> str:
        """The runtime guard's code and ``site``'s data, awaiting the visitor's categories
        (:func:`consentgate.guard.guard_script`)."""
        key = ("guard", site.id)
        found = self._guards.get(key)
        if found is None:
            found = self._guards[key] = f"{guard_code()}({guard_data(site)}"
        return found

    def declaration_html(self, site: Site, lang: str) -> str:
        t = texts_for(site, lang)
        cookies = [
            {k: translate(t, getattr(c, k)) if k != "category" else c.category for k in _COOKIE}
            for c in site.cookies
        ]
        return _DECLARATION.render(
            lang=lang,
            dir=t["dir"],
            d=t["declaration"],
            cols=(*_DECLARATION_COLUMNS, "category"),
            cookies=cookies,
            cats={c: t["categories"][c][0] for c in CATEGORIES},
        )

    def declaration(self, site: Site, lang: str) -> Asset:
        key = ("html", site.id, lang)
        if key not in self._cache:
            body = self.declaration_html(site, lang).encode()
            self._cache[key] = Asset.build(body, "text/html; charset=utf-8")
        return self._cache[key]

    def declaration_js(self, site: Site, lang: str) -> Asset:
        key = ("djs", site.id, lang)
        if key not in self._cache:
            fragment = json.dumps(self.declaration_html(site, lang), ensure_ascii=False)
            fragment = fragment.replace("</", "<\\/")
            body = (
                "(h=>{const s=document.currentScript,"
                "t=document.querySelector('[data-consentgate-declaration]'),"
                "d=document.createElement('div');d.className='consentgate-declaration';"
                "d.innerHTML=h;t?t.replaceChildren(d):s.after(d)})"
                f"({fragment});\n"
            ).encode()
            self._cache[key] = Asset.build(body, "text/javascript; charset=utf-8")
        return self._cache[key]


#: the banner assets of each runtime, built on first use
_ASSETS: weakref.WeakKeyDictionary[Runtime, BannerAssets] = weakref.WeakKeyDictionary()


def assets(runtime: Runtime) -> BannerAssets:
    found = _ASSETS.get(runtime)
    if found is None:
        found = _ASSETS[runtime] = BannerAssets(runtime)
        # built from the declarations: rebuilt after a classification in the console
        runtime.declarations_changed.append(found.forget)
    return found


def _header_map(headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]] | None) -> dict:
    if headers is None:
        return {}
    if isinstance(headers, Mapping):
        return {str(k).lower(): str(v) for k, v in headers.items()}
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}


def head_snippet(
    runtime: Runtime,
    site: Site,
    consent: Consent | None,
    headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]] | None,
    decision: Decision | None = None,
) -> Callable[[str | None], bytes]:
    """The markup for early ``<head>``: Consent Mode v2 default (and update when the visitor
    has decided) inline, then the banner tag. The returned callable takes the page's CSP
    nonce (or None) and gives the bytes to inject.

    ``decision`` (:func:`consentgate.regions.decide_scope`) carries the visitor's regime;
    without it the region is unknown and the site's ``default_regime`` applies."""
    h = _header_map(headers)
    if decision is None:
        decision = decide(site, UNKNOWN, consent, gpc_from_headers(h))
    consent = decision.consent  # None when the visitor must be asked (again)
    lang = pick_language(h.get("accept-language"), site)
    asset = assets(runtime).banner(site, lang, decision.regime, guard=False)
    defaults = consent_mode_defaults(
        site, decision.region, decision.gpc, wait_for_update=500
    )  # the visitor's regime first, then stricter regions
    calls = "".join(
        f"g('consent','default',{json.dumps(d, separators=(',', ':'))});" for d in defaults
    )
    # Microsoft UET consent mode: ad_storage as Google's, for the visitor's regime
    calls += f"u.push('consent','default',{{ad_storage:'{defaults[0]['ad_storage']}'}});"
    if consent is not None:
        now = consent_mode_state(decision.granted)
        calls += f"g('consent','update',{json.dumps(now, separators=(',', ':'))});"
        calls += f"u.push('consent','update',{{ad_storage:'{now['ad_storage']}'}});"
    inline = (
        "window.dataLayer=window.dataLayer||[];"
        f"(function(g,u){{{calls}}})(function(){{dataLayer.push(arguments)}},"
        "window.uetq=window.uetq||[]);"
    )
    src = (
        f"{runtime.settings.prefix}/banner.js?v={asset.version}&l={lang}&site={site.id}"
        f"&r={decision.regime}&g=0"
    )
    state = json.dumps(consent.to_json() if consent else None, separators=(",", ":"))
    gpc = " data-gpc" if decision.gpc else ""
    if decision.regime != "opt-in":
        gpc += f' data-regime="{decision.regime}"'
    esc = html.escape

    def render(nonce: str | None) -> bytes:
        n = f' nonce="{esc(nonce)}"' if nonce else ""
        return (
            f"<script{n}>{inline}</script>"
            f'<script src="{esc(src)}" defer data-cm="1" data-state="{esc(state)}"{gpc}{n}>'
            "</script>"
        ).encode()

    return render


def routes(runtime: Runtime) -> list[BaseRoute]:
    def site_and_lang(request: Request) -> tuple[Site, str, str]:
        sid = request.query_params.get("site")
        site = runtime.site_for(request)
        if sid is not None and sid != site.id:
            match = [s for s in runtime.settings.sites if s.id == sid]
            if not match:
                raise ApiError(404, "unknown_site", f"no site {sid!r} is configured")
            site = match[0]
        lang = request.query_params.get("l", "").lower()
        if lang in site_languages(site):
            return site, lang, ""
        return site, pick_language(request.headers.get("accept-language"), site), "Accept-Language"

    async def banner_js(request: Request) -> Response:
        site, lang, vary = site_and_lang(request)
        regime = request.query_params.get("r", "")
        if regime and regime not in REGIMES:
            raise ApiError(400, "invalid_regime", f"r must be one of {', '.join(REGIMES)}")
        guard = request.query_params.get("g", "1")
        if guard not in ("0", "1"):
            raise ApiError(400, "invalid_guard", "g must be 0 (no runtime guard) or 1")
        asset = assets(runtime).banner(site, lang, regime, guard == "1")
        return asset.response(request, vary=vary)

    async def banner_json(request: Request) -> Response:
        site, lang, vary = site_and_lang(request)
        return assets(runtime).details(site, lang).response(request, vary=vary)

    async def banner_more(request: Request) -> Response:
        site, lang, vary = site_and_lang(request)
        return assets(runtime).more(site, lang).response(request, vary=vary)

    async def banner_css(request: Request) -> Response:
        return assets(runtime).css.response(request)

    async def declaration(request: Request) -> Response:
        site, lang, vary = site_and_lang(request)
        return assets(runtime).declaration(site, lang).response(request, vary=vary)

    async def declaration_js(request: Request) -> Response:
        site, lang, vary = site_and_lang(request)
        return assets(runtime).declaration_js(site, lang).response(request, vary=vary)

    return [
        Route("/banner.js", banner_js, methods=["GET"]),
        Route("/banner.json", banner_json, methods=["GET"]),
        Route("/banner-more.js", banner_more, methods=["GET"]),
        Route("/banner.css", banner_css, methods=["GET"]),
        Route("/declaration", declaration, methods=["GET"]),
        Route("/declaration.js", declaration_js, methods=["GET"]),
    ]
