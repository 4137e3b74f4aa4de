"""Test-side oracle for the corpus: html5lib parses the rewritten page, each element is
matched to the ground truth (../shared/corpus/expected/) and judged active or not.

Independent of consentgate on purpose: activity follows the HTML spec (a script runs
when its ``type`` is a JavaScript MIME type; an iframe/img loads when it has a URL), and
which elements are trackers comes from the corpus labels, not from the catalog.
"""

from __future__ import annotations

import json
from pathlib import Path

import html5lib

from tests.support import CORPUS

JS_TYPES = {
    "application/ecmascript", "application/javascript", "application/x-ecmascript",
    "application/x-javascript", "text/ecmascript", "text/javascript", "text/javascript1.0",
    "text/javascript1.1", "text/javascript1.2", "text/javascript1.3", "text/javascript1.4",
    "text/javascript1.5", "text/jscript", "text/livescript", "text/x-ecmascript",
    "text/x-javascript", "module",
}  # fmt: skip


def executable(attrs: dict[str, str]) -> bool:
    kind = attrs.get("type")
    if kind is None or not kind.strip():
        lang = attrs.get("language")
        if kind is None and lang:
            return "text/" + lang.strip().lower() in JS_TYPES
        return True
    return kind.strip().lower() in JS_TYPES


def _attrs(el) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """html5lib attributes by local name (namespaced ones as prefix:name)."""
    out = {}
    for k, v in el.attrib.items():
        if isinstance(k, str) and k.startswith("{"):
            ns, local = k[1:].split("}")
            k = ("xlink:" if ns.endswith("xlink") else "") + local
        out[k] = v
    return out


def _key(tag: str, attrs: dict[str, str], text: str) -> tuple[str, str, str]:
    return (tag, repr(sorted(attrs.items())), text[:200])


def _originals(attrs: dict[str, str]) -> list[dict[str, str]]:
    """The attribute sets an element may have had before consentgate neutralized it."""
    renamed = {
        k[len("data-consentgate-") :]: v
        for k, v in attrs.items()
        if k.startswith("data-consentgate-") and k != "data-consentgate-oversize"
    }
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


def expected(page: str) -> dict:  # type: ignore[type-arg]
    return json.loads((CORPUS / "expected" / f"{page}.json").read_text())


def pages() -> list[str]:
    return sorted(p.stem for p in (CORPUS / "pages").glob("*.html"))


def page_bytes(page: str) -> bytes:
    return Path(CORPUS / "pages" / f"{page}.html").read_bytes()
