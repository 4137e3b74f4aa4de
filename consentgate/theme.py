"""The site owner's look for the banner: ``[sites.theme]`` checked and turned into CSS.

Pure logic, no HTTP. A theme sets colours, a font, a corner radius, a layout and a dark
variant (``prefers-color-scheme: dark``)::

    [sites.theme]
    layout = "bar"              # box (default: a corner box), bar, dialog (centred, not modal)
    font = "Georgia, serif"
    radius = "12px"
    background = "#fffdf5"
    text = "#222222"
    accent = "#7a2e00"          # links, switches, the buttons
    accent_text = "#ffffff"     # text on the buttons
    [sites.theme.dark]
    background = "#1d1d1d"
    text = "#eeeeee"
    accent = "#ffb37a"
    accent_text = "#1d1d1d"
    error = "#ff8a80"

:func:`check_theme` refuses (:class:`ThemeError`, naming the pair and the ratio) a theme
where a text/background pair is under WCAG 2.x AA (4.5:1), in either variant, or where
*Reject all* would be less prominent than *Accept all* (its fill contrasts less with the
banner's background): equal prominence of the two is a legal rule, not a matter of taste.
:func:`theme_css` gives the CSS appended to the banner's own: custom properties on the
shadow host and only the chosen layout's rules, so a site without a theme pays nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import ConsentGateError

__all__ = ["COLOURS", "LAYOUTS", "ThemeError", "check_theme", "contrast", "theme_css"]

#: Colour keys and their defaults (the banner's CSS uses the same).
COLOURS: dict[str, str] = {
    "background": "#ffffff",
    "text": "#1b1b1b",
    "accent": "#1a4fa0",
    "accent_text": "#ffffff",
    "error": "#b00020",
    # Accept all / Reject all may differ from the other buttons, never in prominence
    "accept": "",
    "accept_text": "",
    "reject": "",
    "reject_text": "",
}
LAYOUTS = ("box", "bar", "dialog")
_KEYS = frozenset({*COLOURS, "layout", "font", "radius", "dark"})
#: WCAG 2.x AA for normal text.
AA = 4.5
#: (foreground, background, what it is): the pairs every variant must pass.
_PAIRS = (
    ("text", "background", "text on the banner"),
    ("accent", "background", "links on the banner"),
    ("accent_text", "accent", "button text"),
    ("error", "background", "the error message"),
    ("accept_text", "accept", "Accept all's text"),
    ("reject_text", "reject", "Reject all's text"),
)
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_LENGTH = re.compile(r"^(?:0|\d{1,3}(?:\.\d{1,3})?(?:px|rem|em))$")
_FONT = re.compile(r"^[\w \-,.'\"]{1,200}$")


class ThemeError(ConsentGateError, ValueError):
    """A theme the banner may not use: names the key or the pair and the ratio."""


def _rgb(colour: str) -> tuple[int, int, int]:
    h = colour[1:]
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def _luminance(colour: str) -> float:
    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2.x contrast ratio of two ``#rgb``/``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _colours(table: Mapping[str, Any], where: str) -> dict[str, str]:
    out = {}
    for key, value in table.items():
        if key not in COLOURS:
            continue
        if not isinstance(value, str) or not _HEX.match(value):
            raise ThemeError(f"{where}{key}: a colour is #rgb or #rrggbb, got {value!r}")
        out[key] = value.lower()
    return out


def _resolved(colours: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in COLOURS.items() if v} | dict(colours)
    for button in ("accept", "reject"):
        out.setdefault(button, out["accent"])
        out.setdefault(f"{button}_text", out["accent_text"])
    return out


def _check_variant(colours: Mapping[str, str], name: str) -> None:
    c = _resolved(colours)
    for fg, bg, what in _PAIRS:
        ratio = contrast(c[fg], c[bg])
        if ratio < AA:
            raise ThemeError(
                f"{name}: {fg} {c[fg]} on {bg} {c[bg]} ({what}) has a contrast of "
                f"{ratio:.2f}:1; WCAG AA needs at least {AA}:1"
            )
    accept, reject = contrast(c["accept"], c["background"]), contrast(c["reject"], c["background"])
    if round(reject, 2) < round(accept, 2):
        raise ThemeError(
            f"{name}: reject {c['reject']} stands out less from the background "
            f"({reject:.2f}:1) than accept {c['accept']} ({accept:.2f}:1); Reject all must "
            "be as prominent as Accept all"
        )


def check_theme(theme: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a ``[sites.theme]`` table; returns it with colours lower-cased.
    Raises :class:`ThemeError`."""
    unknown = sorted(set(theme) - _KEYS)
    if unknown:
        raise ThemeError(f"unknown key(s) {unknown}; known: {', '.join(sorted(_KEYS))}")
    layout = theme.get("layout", "box")
    if layout not in LAYOUTS:
        raise ThemeError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    font = theme.get("font", "")
    balanced = isinstance(font, str) and font.count('"') % 2 == 0 and font.count("'") % 2 == 0
    if font and (not isinstance(font, str) or not _FONT.match(font) or not balanced):
        raise ThemeError(
            f"font is a CSS font-family list (letters, digits, spaces, quotes, commas), "
            f"got {font!r}"
        )
    radius = theme.get("radius", "")
    if radius and (not isinstance(radius, str) or not _LENGTH.match(radius)):
        raise ThemeError(f"radius is a length like 8px or .5rem, got {radius!r}")
    dark = theme.get("dark", {})
    if not isinstance(dark, dict):
        raise ThemeError("dark is a table of colours ([sites.theme.dark])")
    extra = sorted(set(dark) - set(COLOURS))
    if extra:
        raise ThemeError(f"dark: unknown key(s) {extra}; known: {', '.join(COLOURS)}")
    light = _colours(theme, "")
    _check_variant(light, "theme")
    dark_colours = _colours(dark, "dark.")
    if dark_colours:
        _check_variant({**light, **dark_colours}, "theme.dark")
    out = {k: v for k, v in theme.items() if k not in COLOURS and k != "dark"} | light
    if dark_colours:
        out["dark"] = dark_colours
    return out


# custom property per colour key (banner.css reads them with its defaults)
_PROPS = {
    "background": "--bg",
    "text": "--fg",
    "accent": "--a",
    "accent_text": "--at",
    "error": "--e",
}
_LAYOUT_CSS = {
    "box": "",
    # a full-width bar at the bottom; the buttons beside the text on wide screens
    "bar": ".b:not(.s){inset-inline:0;bottom:0;width:auto;border-radius:0;border-width:1px 0 0}",
    # centred, over the page but not modal: no backdrop, the page stays usable
    "dialog": ".b:not(.s){inset:0;margin:auto;height:fit-content}",
}


def _variant_css(colours: Mapping[str, str]) -> str:
    decl = "".join(f"{_PROPS[k]}:{v};" for k, v in colours.items() if k in _PROPS)
    rules = f":host{{{decl.rstrip(';')}}}" if decl else ""
    for button in ("accept", "reject"):
        fill, text = colours.get(button), colours.get(f"{button}_text")
        if fill or text:
            props = ([f"background:{fill};border-color:{fill}"] if fill else []) + (
                [f"color:{text}"] if text else []
            )
            rules += f"[data-a={button}]{{{';'.join(props)}}}"
    return rules


def theme_css(theme: Mapping[str, Any]) -> str:
    """CSS appended to the banner's for a checked theme ("" without one)."""
    if not theme:
        return ""
    props = []
    if theme.get("font"):
        props.append(f"--ff:{theme['font']}")
    if theme.get("radius"):
        props.append(f"--r:{theme['radius']}")
    css = f":host{{{';'.join(props)}}}" if props else ""
    css += _variant_css({k: v for k, v in theme.items() if k in COLOURS})
    if theme.get("dark"):
        css += f"@media(prefers-color-scheme:dark){{{_variant_css(theme['dark'])}}}"
    return css + _LAYOUT_CSS[theme.get("layout", "box")]
