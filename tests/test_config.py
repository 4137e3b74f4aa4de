from __future__ import annotations

import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from consentgate.cli import cli
from consentgate.config import SEED_COOKIES, ConfigError, load_settings

KEY = "config-test-key-0123456789"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "consentgate.toml"
    path.write_text(text)
    return path


def test_embedded_defaults_generate_and_persist_a_private_secret(tmp_path: Path) -> None:
    env = {"CONSENTGATE_DATA_DIR": str(tmp_path / "data")}
    first = load_settings(None, environ=env)
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first.secret_keys) == 1 and len(first.secret_keys[0]) >= 32
    assert load_settings(None, environ=env).secret_keys == first.secret_keys
    assert first.database == f"sqlite:///{tmp_path / 'data' / 'consent.db'}"
    (site,) = first.sites
    assert site.demo and site.cookies[: len(SEED_COOKIES)] == list(SEED_COOKIES)
    # the seed's table, then the catalog's cookies of the demo's other trackers
    assert [c.name for c in site.cookies][4:] == [
        "_fbp",
        "_fbc",
        "fr",
        "VISITOR_INFO1_LIVE",
        "YSC",
        "PREF",
    ]


def test_environment_and_overrides_take_precedence(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f'[server]\nsecret_keys = ["{KEY}"]\nport = 9000\ndatabase = "sqlite:///file.db"\n',
    )
    env = {
        "CONSENTGATE_SECRET_KEYS": "env-key-newest-0123456789, env-key-older-0123456789",
        "CONSENTGATE_DATABASE": "postgresql://u:p@127.0.0.1/test",
        "CONSENTGATE_DATA_DIR": str(tmp_path / "d"),
    }
    s = load_settings(path, environ=env, overrides={"port": 9100, "host": None})
    assert s.secret_keys == ["env-key-newest-0123456789", "env-key-older-0123456789"]
    assert s.database.startswith("postgresql://")
    assert s.port == 9100 and s.host == "127.0.0.1"
    assert s.data_dir == tmp_path / "d"
    assert not (tmp_path / "d" / "secret.key").exists()


def test_sites_and_upstream(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[server]
secret_keys = ["{KEY}"]

[[sites]]
id = "shop"
hosts = ["shop.example"]
consent_lifetime_days = 30
regimes = {{ US = "opt-out" }}

[[sites.cookies]]
name = "_ga"
category = "statistics"

[[sites]]
id = "blog"
""",
    )
    s = load_settings(path, environ={}, overrides={"upstream": "http://127.0.0.1:9"})
    assert [x.id for x in s.sites] == ["shop", "blog"]
    assert s.sites[0].upstream == "http://127.0.0.1:9"
    assert s.sites[0].lifetime_seconds == 30 * 86400
    assert s.site_for_host("shop.example:443").id == "shop"
    assert s.site_for_host("other").id == "blog"  # the site without hosts catches the rest
    assert s.site("blog").id == "blog"
    with pytest.raises(ConfigError, match="no site 'nope'"):
        s.site("nope")


BAD = [
    ("[server\n", None, "not valid TOML"),
    ("[servr]\n", None, "unknown top-level table"),
    ("[server]\nprot = 1\n", "server.prot", "unknown setting; known: secret_keys"),
    ('[server]\nport = "80"\n', "server.port", "expected a whole number"),
    ("[server]\nport = true\n", "server.port", "expected a whole number"),
    ('[server]\nsecret_keys = ["short"]\n', "secret_keys", "at least 16 characters"),
    ('[server]\ndatabase = "mysql://x"\n', "database", "sqlite:///PATH or postgresql://"),
    ('[server]\nprefix = "consent/"\n', "server.prefix", "must start with /"),
    ("[[sites]]\nhosts = []\n", "sites[0].id", 'add id = "main"'),
    ('[[sites]]\nid = "a b"\n', "sites[0].id", "contains a space at position 2"),
    ('[[sites]]\nid = ""\n', "sites[0].id", "the site id is empty"),
    ('[[sites]]\nid = "caf\u00e9"\n', "sites[0].id", "'\u00e9' (U+00E9) at position 4"),
    ('[[sites]]\nid = "shop.example"\n', "sites[0].id", "'.' (U+002E) at position 5"),
    ('[[sites]]\nid = "%s"\n' % ("a" * 65), "sites[0].id", "65 characters long, at most 64"),
    (
        '[[sites]]\nid = "a"\nlanguages = ["en", "es"]\n',
        "sites[0].languages",
        "no banner texts for language 'es': shipped languages are de, en, fr, kk, ru; "
        "for another one add its texts in a [sites.texts.es] table",
    ),
    ('[[sites]]\nid = "a"\nlanguages = []\n', "sites[0].languages", "at least one language"),
    (
        '[[sites]]\nid = "a"\nlanguages = ["de"]\n',
        "sites[0].default_language",
        "'en' is not one of the site's languages (de)",
    ),
    ('[[sites]]\nid = "a"\nconsent_lifetime_days = 401\n', "consent_lifetime_days", "400"),
    ('[[sites]]\nid = "a"\nupstream = "ftp://x"\n', "sites[0].upstream", "http:// or https://"),
    ('[[sites]]\nid = "a"\nstrict = "yes"\n', "sites[0].strict", "true or false"),
    ('[[sites]]\nid = "a"\nregimes = { US = "maybe" }\n', "sites[0].regimes", "opt-in"),
    ('[[sites]]\nid = "a"\n[[sites]]\nid = "a"\n', "sites", "unique"),
    ('sites = "x"\n', "sites", "[[sites]]"),
    (
        '[[sites]]\nid = "a"\n[[sites.cookies]]\nname = "_ga"\ncategory = "tracking"\n',
        "sites[0].cookies[0].category",
        "must be one of necessary",
    ),
    (
        '[[sites]]\nid = "a"\n[[sites.cookies]]\nname = "_ga"\ncategory = "statistics"\nttl = 1\n',
        "sites[0].cookies[0]",
        "unknown cookie field",
    ),
]


@pytest.mark.parametrize(("text", "key", "fix"), BAD)
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str | None, fix: str) -> None:
    path = write(tmp_path, text)
    env = {"CONSENTGATE_DATA_DIR": str(tmp_path / "data")}
    if "secret_keys" not in text:
        env["CONSENTGATE_SECRET_KEYS"] = KEY
    with pytest.raises(ConfigError) as exc:
        load_settings(path, environ=env)
    message = str(exc.value)
    assert message.startswith(str(path)), message
    assert exc.value.file == str(path)
    if key:
        assert key in message
    assert fix in message


def test_missing_file_points_at_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="consentgate init"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_bad_upstream_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--upstream"):
        load_settings(
            None,
            environ={"CONSENTGATE_SECRET_KEYS": KEY, "CONSENTGATE_DATA_DIR": str(tmp_path)},
            overrides={"upstream": "localhost:8080"},
        )


def test_a_language_with_the_sites_own_texts_is_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[sites]]\nid = "a"\nlanguages = ["en", "ES"]\ndefault_language = "es"\n'
        '[sites.texts.es]\ntitle = "Cookies"\n',
    )
    site = load_settings(path, environ={"CONSENTGATE_SECRET_KEYS": KEY}).sites[0]
    assert site.languages == ["en", "ES"] and site.default_language == "es"


def test_serve_names_an_invalid_site_id_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, '[[sites]]\nid = "my shop"\n')
    result = CliRunner().invoke(
        cli, ["serve", "--config", str(path)], env={"CONSENTGATE_SECRET_KEYS": KEY}
    )
    assert result.exit_code == 2, result.output
    assert "sites[0].id: the site id 'my shop' contains a space at position 3" in result.output
