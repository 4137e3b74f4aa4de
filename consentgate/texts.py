"""Banner texts: the locale files, language negotiation and site overrides.

Pure logic, no HTTP. ``consentgate/locales/<lang>.json`` holds, per language, the banner
``texts``, the five ``categories`` as ``[name, description]`` (English from the seed policy's
cookie section), the ``declaration`` column headers and ``phrases``: the English texts of the
cookie declarations (the seed's table, the tracker catalog's purposes and expiries) with
their translation, used by the second layer and the declaration page. A site's ``texts``
table overrides any of them per language::

    [sites.texts.en]
    title = "Cookies at Example"          # any key of "texts"
    cat_statistics = "Analytics"          # a category's name
    desc_statistics = "We count visits."  # a category's description

    [sites.texts.de]
    "phrase:Counts visits." = "Zählt Besuche."  # a declared cookie's text, translated

A language a site adds only through ``texts`` falls back to English for missing keys.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any

from .config import LOCALE_DIR, Site, shipped_locales
from .consent import CATEGORIES

__all__ = [
    "LOCALES",
    "banner_hash",
    "pick_language",
    "site_languages",
    "texts_for",
    "translate",
]

#: Languages shipped with consentgate.
LOCALES: tuple[str, ...] = shipped_locales()
RTL = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ks", "ps", "sd", "ug", "ur", "yi"})


@cache
def _locale(lang: str) -> dict[str, Any]:
    return json.loads((LOCALE_DIR / f"{lang}.json").read_text(encoding="utf-8"))


def site_languages(site: Site) -> list[str]:
    """The languages a site offers that have texts (shipped or from the site's config)."""
    have = set(LOCALES) | set(site.texts)
    return [lang.lower() for lang in site.languages if lang.lower() in have]


def pick_language(accept_language: str | None, site: Site) -> str:
    """The best offered language for an ``Accept-Language`` value; the site default else."""
    offered = site_languages(site)
    fallback = site.default_language.lower()
    if fallback not in offered:
        fallback = offered[0] if offered else "en"
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:512].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            ranked.append((-q, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag == "*":
            return fallback
        for candidate in (tag, tag.split("-")[0]):
            if candidate in offered:
                return candidate
    return fallback


def texts_for(site: Site, lang: str) -> dict[str, Any]:
    """Merged texts for one language: English, then the locale, then the site's overrides.

    Returns ``{"lang", "dir", "texts", "categories", "declaration", "phrases"}``.
    """
    base = _locale("en")
    own = _locale(lang) if lang in LOCALES else {}
    texts = {**base["texts"], **own.get("texts", {})}
    declaration = {**base["declaration"], **own.get("declaration", {})}
    categories = {c: list(base["categories"][c]) for c in CATEGORIES}
    for c, pair in own.get("categories", {}).items():
        categories[c] = list(pair)
    phrases = dict(own.get("phrases", {}))
    direction = own.get("dir", "rtl" if lang.split("-")[0] in RTL else "ltr")
    for key, value in site.texts.get(lang, {}).items():
        value = str(value)
        if key == "dir":
            direction = "rtl" if value == "rtl" else "ltr"
        elif key.startswith("cat_") and key[4:] in categories:
            categories[key[4:]][0] = value
        elif key.startswith("desc_") and key[5:] in categories:
            categories[key[5:]][1] = value
        elif key.startswith("declaration_"):
            declaration[key[12:]] = value
        elif key.startswith("phrase:"):
            phrases[key[7:]] = value
        else:
            texts[key] = value
    return {
        "lang": lang,
        "dir": direction,
        "texts": texts,
        "categories": categories,
        "declaration": declaration,
        "phrases": phrases,
    }


def translate(texts: dict[str, Any], text: str) -> str:
    """A declaration's English ``text`` in the language of ``texts`` (:func:`texts_for`),
    as it is when there is no translation."""
    return str(texts["phrases"].get(text, text))


def banner_hash(texts: dict[str, Any]) -> str:
    """A short, stable hash of the banner text shown (recorded with each decision)."""
    shown = {"texts": texts["texts"], "categories": texts["categories"]}
    raw = json.dumps(shown, sort_keys=True, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:32]
