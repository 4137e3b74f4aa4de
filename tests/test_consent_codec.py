from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consentgate.consent import CATEGORIES, Consent, ConsentCodec, CookieRejected

KEYS = ["newest-key-0123456789abcdef", "older-key-0123456789abcdef"]


def make(granted: frozenset[str] = frozenset({"necessary"}), **kw: object) -> Consent:
    now = int(time.time())
    base: dict[str, object] = {
        "consent_id": "abc",
        "granted": granted,
        "policy_version": "1",
        "given_at": now,
        "expires_at": now + 3600,
    }
    base.update(kw)
    return Consent(**base)  # type: ignore[arg-type]


@given(
    st.sets(st.sampled_from(CATEGORIES)),
    st.text(min_size=1, max_size=20),
    st.sampled_from(["opt-in", "opt-out", "notice"]),
    st.booleans(),
)
def test_roundtrip(granted: set[str], version: str, regime: str, gpc: bool) -> None:
    codec = ConsentCodec(KEYS)
    c = make(frozenset(granted) | {"necessary"}, policy_version=version, regime=regime, gpc=gpc)
    value = codec.dumps(c)
    assert len(value) < 4096
    assert codec.loads(value) == c


@given(st.integers(min_value=0), st.characters(codec="ascii"))
def test_any_single_change_is_rejected(pos: int, ch: str) -> None:
    codec = ConsentCodec(KEYS)
    value = codec.dumps(make(frozenset(CATEGORIES)))
    i = pos % len(value)
    if value[i] == ch:
        return
    tampered = value[:i] + ch + value[i + 1 :]
    with pytest.raises(CookieRejected):
        codec.loads(tampered)


def test_every_single_character_change_is_rejected() -> None:
    """Exhaustively: every position, every printable ASCII character. Base64 has
    other spellings of the same bytes ("/" for "_", unused low bits in the last
    character); a cookie spelled differently from what the server wrote is refused."""
    codec = ConsentCodec(KEYS)
    value = codec.dumps(make(frozenset(CATEGORIES)))
    accepted = []
    for i, original in enumerate(value):
        for ch in map(chr, range(32, 127)):
            if ch == original:
                continue
            try:
                codec.loads(value[:i] + ch + value[i + 1 :])
            except CookieRejected:
                continue
            accepted.append((i, original, ch))
    assert accepted == []


def test_a_compressed_cookie_from_itsdangerous_still_verifies() -> None:
    """itsdangerous marks a zlib-compressed payload with a leading "." (earlier
    builds signed with its dumps()); the canonical-spelling check lets it through."""
    from itsdangerous import URLSafeSerializer

    from consentgate.consent import COOKIE_SALT

    long = {"i": "abc", "g": 31, "v": "2026-01" * 5, "t": 1, "e": 2**40, "s": "shop" * 10}
    value = URLSafeSerializer(list(reversed(KEYS)), salt=COOKIE_SALT).dumps(long)
    assert value.startswith(".")
    assert ConsentCodec(KEYS).loads(value).site_id == "shop" * 10
    with pytest.raises(CookieRejected):
        ConsentCodec(KEYS).loads("." + ConsentCodec(KEYS).dumps(make()))


def test_rotation_old_key_still_verifies_new_key_signs() -> None:
    old = ConsentCodec(["older-key-0123456789abcdef"])
    value = old.dumps(make())
    rotated = ConsentCodec(KEYS)
    assert rotated.loads(value).consent_id == "abc"
    assert rotated.dumps(make()) != value
    with pytest.raises(CookieRejected) as exc:
        old.loads(rotated.dumps(make()))
    assert exc.value.reason == "bad_signature"


def test_foreign_key_and_expired_and_wrong_site() -> None:
    codec = ConsentCodec(KEYS)
    with pytest.raises(CookieRejected) as exc:
        codec.loads(ConsentCodec(["someone-else-0123456789"]).dumps(make()))
    assert exc.value.reason == "bad_signature"
    with pytest.raises(CookieRejected) as exc:
        codec.loads(codec.dumps(make(expires_at=int(time.time()) - 1)))
    assert exc.value.reason == "expired"
    with pytest.raises(CookieRejected) as exc:
        codec.loads(codec.dumps(make(site_id="a")), site_id="b")
    assert exc.value.reason == "wrong_site"


def test_ids_are_alphanumeric_so_no_cli_or_csv_can_misread_them() -> None:
    from consentgate.consent import new_consent_id

    ids = {new_consent_id() for _ in range(5000)}
    assert len(ids) == 5000
    assert all(len(i) == 22 and i.isascii() and i.isalnum() for i in ids)


def test_id_digits_are_uniform() -> None:
    """Every base-62 digit about equally often (a biased mapping of random bytes to
    digits would make ids easier to guess)."""
    from collections import Counter

    from consentgate.consent import new_consent_id

    counts = Counter("".join(new_consent_id() for _ in range(4000)))
    assert len(counts) == 62
    expected = 4000 * 22 / 62
    assert all(abs(n - expected) < expected * 0.15 for n in counts.values()), counts
