"""Test-side oracle for the corpus: html5lib parses a page and the LABELS.md rules
(S1-S8, T1-T5, N1) say which elements are trackers and whether they are still active.

Independent of consentgate's catalog on purpose: it re-implements the corpus's own
labelling rules, so the rewriter is judged by the ground truth, not by itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import html5lib

from tests.support import CORPUS

NS = {
    "http://www.w3.org/1999/xhtml": "html",
    "http://www.w3.org/2000/svg": "svg",
    "http://www.w3.org/1998/Math/MathML": "math",
}
JS_TYPES = {
    "application/ecmascript", "application/javascript", "application/x-ecmascript",
    "application/x-javascript", "text/ecmascript", "text/javascript", "text/javascript1.0",
    "text/javascript1.1", "text/javascript1.2", "text/javascript1.3", "text/javascript1.4",
    "text/javascript1.5", "text/jscript", "text/livescript", "text/x-ecmascript",
    "text/x-javascript", "module",
}  # fmt: skip
T_RULES = [
    ("marketing:meta-pixel", re.compile(r"fbq\(|connect\.facebook\.net/\S*fbevents")),
    ("marketing:facebook-sdk", re.compile(r"connect\.facebook\.net/")),
    ("statistics:hotjar", re.compile(r"static\.hotjar\.com|_hjSettings|hotjar\.com/c/hotjar-")),
    (
        "statistics:google-tag-manager",
        re.compile(r"googletagmanager\.com/gtm\.js|['\"]dataLayer['\"]\s*,\s*['\"]GTM-"),
    ),
    (
        "statistics:google-analytics",
        re.compile(
            r"gtag\(|googletagmanager\.com/gtag/js|GoogleAnalyticsObject|"
            r"google-analytics\.com/(?:analytics|ga|urchin)\.js|ga\(\s*['\"]create|_gaq|"
            r"_gat\._getTracker|urchinTracker\("
        ),
    ),
]
GA_PATHS = ("/analytics.js", "/ga.js", "/urchin.js", "/analytics_debug.js", "/collect",
            "/r/collect", "/g/collect", "/__utm.gif")  # fmt: skip


def _host_is(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def url_label(tag: str, url: str) -> str | None:
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host, path, query = (parts.hostname or "").lower(), parts.path, parts.query
    if tag == "script" and _host_is(host, "googletagmanager.com") and path.startswith("/gtag/js"):
        ids = re.findall(r"(?:^|&)id=([^&]*)", query)
        if ids and ids[0].startswith(("AW-", "DC-")):
            return "marketing:google-ads"
        return "statistics:google-analytics"
    if tag in ("script", "iframe") and _host_is(host, "googletagmanager.com"):
        if path in ("/gtm.js", "/ns.html"):
            return "statistics:google-tag-manager"
    if tag in ("script", "img"):
        if _host_is(host, "google-analytics.com") and path in GA_PATHS:
            return "statistics:google-analytics"
        if host == "stats.g.doubleclick.net" and path == "/dc.js":
            return "statistics:google-analytics"
        if (_host_is(host, "connect.facebook.net") and "fbevents" in path) or (
            _host_is(host, "facebook.com") and path.startswith("/tr")
        ):
            return "marketing:meta-pixel"
    if tag == "script":
        if _host_is(host, "connect.facebook.net"):
            return "marketing:facebook-sdk"
        if _host_is(host, "hotjar.com") or _host_is(host, "hotjar.io"):
            return "statistics:hotjar"
    if tag == "iframe" and path.startswith("/embed"):
        if _host_is(host, "youtube.com") or _host_is(host, "youtube-nocookie.com"):
            return "marketing:youtube"
    return None


def executable(attrs: dict[str, str]) -> bool:
    kind = attrs.get("type")
    if kind is None or not kind.strip():
        lang = attrs.get("language")
        if kind is None and lang:
            return "text/" + lang.strip().lower() in JS_TYPES
        return True
    return kind.strip().lower() in JS_TYPES


def _key(tag: str, attrs: dict[str, str], text: str) -> tuple[str, str, str]:
    return (tag, repr(sorted(attrs.items())), text[:200])


def _originals(attrs: dict[str, str]) -> list[dict[str, str]]:
    """The attribute sets an element may have had before consentgate neutralized it."""
    renamed = {k[len("data-consentgate-") :]: v for k, v in attrs.items()
               if k.startswith("data-consentgate-") and k != "data-consentgate-oversize"}
    if not renamed and attrs.get("type") != "text/plain":
        return [attrs]
    base = {k: v for k, v in attrs.items() if not k.startswith("data-consentgate-")}
    base.update({k.replace("xlink-", "xlink:"): v for k, v in renamed.items()})
    out = [attrs]
    stripped = dict(base)
    stripped.pop("data-consent", None)
    if "type" not in renamed:
        stripped.pop("type", None)
    out.append(stripped)
    return out


def still_active(out: bytes, exp: dict, skip: set[int]) -> tuple[list[str], int]:  # type: ignore[type-arg]
    """Labelled elements (per ``exp``) still active in the rewritten page ``out``.

    Output elements are matched to the ground truth by tag, original attributes (the
    neutralizing renames reversed) and the first 200 characters of text."""
    wanted: dict[tuple[str, str, str], list[dict]] = {}  # type: ignore[type-arg]
    for e in exp["elements"]:
        if e["tracker"] and e["tag"] in ("script", "iframe", "img") and e["index"] not in skip:
            key = _key(e["tag"], e["attrs"], e.get("inline_text_200", ""))
            wanted.setdefault(key, []).append(e)
    doc = html5lib.parse(out, treebuilder="etree", namespaceHTMLElements=True, useChardet=False)
    active: list[str] = []
    matched = set()
    for el in doc.iter():
        if not isinstance(el.tag, str) or "}" not in el.tag:
            continue
        tag = el.tag.split("}")[1]
        if tag not in ("script", "iframe", "img"):
            continue
        attrs = _attrs(el)
        text = "".join(el.itertext()) if tag == "script" else ""
        for cand in _originals(attrs):
            same = wanted.get(_key(tag, cand, text))
            if not same:
                continue
            e = same.pop(0)
            matched.add(e["index"])
            if tag == "script":
                on = executable(attrs)
            else:
                on = any(attrs.get(k) for k in ("src", "data-src", "data-lazy-src", "srcset"))
            if on:
                active.append(f"{tag} #{e['index']} {e['tracker']} {str(attrs)[:120]}")
            break
    return active, len(matched)


@dataclass
class Found:
    tag: str
    label: str
    active: bool
    attrs: dict[str, str]
    text: str


def _attrs(el) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {(k.split("}")[-1] if isinstance(k, str) else k[1]): v for k, v in el.attrib.items()}


def labelled(data: bytes) -> Iterator[Found]:
    """Every element the LABELS.md rules label, with whether it is still active."""
    doc = html5lib.parse(data, treebuilder="etree", namespaceHTMLElements=True, useChardet=False)
    yield from _walk(doc)


def _walk(root) -> Iterator[Found]:  # type: ignore[no-untyped-def]
    for el in root.iter():
        if not isinstance(el.tag, str) or "}" not in el.tag:
            continue
        ns, tag = el.tag[1:].split("}")
        if tag not in ("script", "iframe", "img"):
            continue
        attrs = _attrs(el)
        labels = []
        for key in ("src", "data-src", "data-lazy-src"):
            if attrs.get(key):
                lab = url_label(tag, attrs[key])
                if lab:
                    labels.append((key, lab))
        text = "".join(el.itertext()) if tag == "script" else ""
        if tag == "script":
            for lab, rx in T_RULES:
                if rx.search(text):
                    labels.append(("text", lab))
                    break
        if not labels:
            continue
        if tag == "script":
            active = executable(attrs)
        else:
            active = any(key != "text" for key, _ in labels)
        yield Found(tag, labels[0][1], active, attrs, text)


def expected(page: str) -> dict:  # type: ignore[type-arg]
    return json.loads((CORPUS / "expected" / f"{page}.json").read_text())


def pages() -> list[str]:
    return sorted(p.stem for p in (CORPUS / "pages").glob("*.html"))


def page_bytes(page: str) -> bytes:
    return Path(CORPUS / "pages" / f"{page}.html").read_bytes()
