"""The owner's look (``[sites.theme]``): contrast and prominence checks, the CSS it adds,
and ``serve`` refusing a theme that fails them (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from consentgate.cli import cli
from consentgate.theme import COLOURS, ThemeError, check_theme, contrast, theme_css

colour = st.integers(0, 0xFFFFFF).map(lambda n: f"#{n:06x}")


def test_contrast_matches_wcag_reference_values() -> None:
    assert contrast("#000", "#fff") == pytest.approx(21.0)
    assert contrast("#fff", "#fff") == pytest.approx(1.0)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the AA grey
    assert contrast(COLOURS["accent"], COLOURS["background"]) >= 4.5  # the defaults pass


@given(colour, colour)
@settings(max_examples=200)
def test_contrast_is_symmetric_and_bounded(a: str, b: str) -> None:
    assert contrast(a, b) == pytest.approx(contrast(b, a))
    assert 1.0 <= contrast(a, b) <= 21.0


@given(background=colour, text=colour)
@settings(max_examples=200)
def test_any_accepted_theme_passes_aa_for_every_pair(background: str, text: str) -> None:
    """Whatever colours an owner picks, a theme that passes the check has AA contrast."""
    theme = {"background": background, "text": text}
    try:
        checked = check_theme(theme)
    except ThemeError as exc:
        assert "contrast of" in str(exc) and ":1" in str(exc)
        return
    assert contrast(checked["text"], checked["background"]) >= 4.5
    assert contrast(COLOURS["accent"], checked["background"]) >= 4.5


@pytest.mark.parametrize(
    ("theme", "says"),
    [
        ({"text": "#777777"}, "text #777777 on background #ffffff"),
        ({"accent": "#99bbff"}, "accent #99bbff on background #ffffff"),
        ({"accent_text": "#5577bb"}, "accent_text #5577bb on accent #1a4fa0"),
        ({"dark": {"background": "#111111"}}, "theme.dark: text #1b1b1b on background #111111"),
        # an outlined or paler Reject beside a filled Accept: less prominent
        ({"reject": "#ffffff", "reject_text": "#1a4fa0"}, "Reject all must be as prominent"),
        ({"accept": "#000000", "reject": "#1a4fa0"}, "reject #1a4fa0 stands out less"),
        ({"layout": "wall"}, "layout must be one of box, bar, dialog"),
        ({"radius": "1px;}x{"}, "radius is a length"),
        ({"font": "x;}</style>"}, "font is a CSS font-family"),
        ({"font": '"Open Sans, serif'}, "font is a CSS font-family"),  # an open string
        ({"background": "white"}, "a colour is #rgb or #rrggbb"),
        ({"shadow": "#000"}, "unknown key(s) ['shadow']"),
    ],
)
def test_refused_themes_name_the_problem(theme: dict, says: str) -> None:
    with pytest.raises(ThemeError, match=None) as caught:
        check_theme(theme)
    assert says in str(caught.value)


def test_css_is_custom_properties_and_only_the_chosen_layout() -> None:
    assert theme_css({}) == ""
    theme = check_theme(
        {
            "layout": "bar",
            "font": "Georgia, serif",
            "radius": "0",
            "background": "#FFFDF5",
            "dark": {
                "background": "#1d1d1d",
                "text": "#eeeeee",
                "accent": "#ffb37a",
                "accent_text": "#1d1d1d",
                "error": "#ff8a80",
            },
        }
    )
    css = theme_css(theme)
    assert ":host{--ff:Georgia, serif;--r:0}" in css
    assert "--bg:#fffdf5" in css and "[data-a=" not in css
    assert "@media(prefers-color-scheme:dark){:host{--bg:#1d1d1d;--fg:#eeeeee;" in css
    assert "inset-inline:0" in css and "margin:auto" not in css  # bar, not dialog
    assert "margin:auto" in theme_css(check_theme({"layout": "dialog"}))
    # Reject may be more prominent than Accept, never less
    buttons = theme_css(check_theme({"accept": "#1a4fa0", "reject": "#000", "reject_text": "#fff"}))
    assert "[data-a=reject]{background:#000;border-color:#000;color:#fff}" in buttons


def test_serve_refuses_a_theme_naming_the_pair_and_ratio(tmp_path: Path) -> None:
    config = tmp_path / "cg.toml"
    config.write_text(
        '[[sites]]\nid = "shop"\n[sites.theme]\nbackground = "#ffffff"\ntext = "#aaaaaa"\n'
    )
    result = CliRunner().invoke(
        cli, ["serve", "--config", str(config), "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 2, result.output
    assert "sites[0].theme" in result.output
    assert "text #aaaaaa on background #ffffff" in result.output and "2.32:1" in result.output
    assert not (tmp_path / "d" / "consent.db").exists()
    config.write_text(
        '[[sites]]\nid = "shop"\n[sites.theme]\naccept = "#000000"\nreject = "#555555"\n'
    )
    result = CliRunner().invoke(
        cli, ["serve", "--config", str(config), "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and "as prominent as Accept all" in result.output
    assert "(7.46:1)" in result.output and "(21.00:1)" in result.output
