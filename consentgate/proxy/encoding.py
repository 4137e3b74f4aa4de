"""Content codings the proxy can decode and re-encode, as a table.

HTML must be rewritten, so the proxy only asks the upstream for codings it can decode
(:func:`constrain_accept_encoding`); a rewritten page is re-encoded with the coding the
upstream used, so the visitor still gets a compressed page. ``zstd`` joins the table
when the optional ``zstandard`` module is installed (``pip install zstandard``).

Exceptions::

    DecodeError   a body that does not decode with its declared coding
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

import brotli

from ..errors import ConsentGateError

__all__ = [
    "CODINGS",
    "DecodeError",
    "Decoder",
    "Encoder",
    "constrain_accept_encoding",
    "decoder_for",
    "encoder_for",
]


class DecodeError(ConsentGateError):
    """The body is not valid for its Content-Encoding."""


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Encoder(Protocol):
    def encode(self, data: bytes) -> bytes: ...
    def sync(self) -> bytes:
        """Everything encoded so far, decodable now (the stream goes on)."""
        ...

    def flush(self) -> bytes: ...


class _ZlibDecoder:
    """gzip (wbits 16+), zlib-wrapped deflate, and raw deflate (some servers send it)."""

    def __init__(self, wbits: int) -> None:
        self._wbits = wbits
        self._obj = zlib.decompressobj(wbits)
        self._started = False
        self._head = b""  # deflate: the first bytes, until the two of a zlib header are in

    def decode(self, data: bytes) -> bytes:
        if self._wbits == zlib.MAX_WBITS and not self._started:
            # zlib-wrapped or raw deflate is told by the two-byte zlib header: a body that
            # arrives a byte at a time is not judged on its first byte alone
            self._head += data
            if len(self._head) < 2:
                return b""
            data, self._head = self._head, b""
            if (data[0] & 0x0F != 8) or (data[0] << 8 | data[1]) % 31:  # no zlib header
                self._wbits = -zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
        try:
            out = self._obj.decompress(data)
        except zlib.error as exc:
            if self._wbits == zlib.MAX_WBITS and not self._started:  # raw deflate after all
                self._wbits = -zlib.MAX_WBITS
                self._obj = zlib.decompressobj(self._wbits)
                return self.decode(data)
            raise DecodeError(str(exc)) from None
        self._started = True
        return out

    def flush(self) -> bytes:
        if self._head or (not self._obj.eof and self._started):
            raise DecodeError("compressed body ended early")
        return self._obj.flush()


class _BrotliDecoder:
    def __init__(self) -> None:
        self._obj = brotli.Decompressor()

    def decode(self, data: bytes) -> bytes:
        try:
            return bytes(self._obj.process(data))
        except brotli.error as exc:
            raise DecodeError(str(exc)) from None

    def flush(self) -> bytes:
        if not self._obj.is_finished():
            raise DecodeError("brotli body ended early")
        return b""


class _ZlibEncoder:
    def __init__(self, wbits: int, level: int = 6) -> None:
        self._obj = zlib.compressobj(level, zlib.DEFLATED, wbits)

    def encode(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def sync(self) -> bytes:
        return self._obj.flush(zlib.Z_SYNC_FLUSH)

    def flush(self) -> bytes:
        return self._obj.flush()


class _BrotliEncoder:
    def __init__(self, quality: int = 5) -> None:
        self._obj = brotli.Compressor(quality=quality)

    def encode(self, data: bytes) -> bytes:
        return bytes(self._obj.process(data))

    def sync(self) -> bytes:
        return bytes(self._obj.flush())

    def flush(self) -> bytes:
        return bytes(self._obj.finish())


#: coding -> (decoder factory, encoder factory)
CODINGS: dict[str, tuple[Callable[[], Decoder], Callable[[], Encoder]]] = {
    "gzip": (lambda: _ZlibDecoder(16 + zlib.MAX_WBITS), lambda: _ZlibEncoder(16 + zlib.MAX_WBITS)),
    "x-gzip": (
        lambda: _ZlibDecoder(16 + zlib.MAX_WBITS),
        lambda: _ZlibEncoder(16 + zlib.MAX_WBITS),
    ),
    "deflate": (lambda: _ZlibDecoder(zlib.MAX_WBITS), lambda: _ZlibEncoder(zlib.MAX_WBITS)),
    "br": (_BrotliDecoder, _BrotliEncoder),
}

try:  # optional accelerator: zstd (pip install zstandard)
    import zstandard

    class _ZstdDecoder:
        def __init__(self) -> None:
            self._obj = zstandard.ZstdDecompressor().decompressobj()

        def decode(self, data: bytes) -> bytes:
            try:
                return bytes(self._obj.decompress(data))
            except zstandard.ZstdError as exc:
                raise DecodeError(str(exc)) from None

        def flush(self) -> bytes:
            return b""

    class _ZstdEncoder:
        def __init__(self) -> None:
            self._obj = zstandard.ZstdCompressor(level=3).compressobj()

        def encode(self, data: bytes) -> bytes:
            return bytes(self._obj.compress(data))

        def sync(self) -> bytes:
            return bytes(self._obj.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

        def flush(self) -> bytes:
            return bytes(self._obj.flush())

    CODINGS["zstd"] = (_ZstdDecoder, _ZstdEncoder)
except ImportError:  # pragma: no cover - depends on the environment
    pass


def decoder_for(coding: str) -> Decoder | None:
    """A fresh decoder for a Content-Encoding value, or None when unsupported."""
    entry = CODINGS.get(coding.strip().lower())
    return entry[0]() if entry else None


def encoder_for(coding: str) -> Encoder | None:
    entry = CODINGS.get(coding.strip().lower())
    return entry[1]() if entry else None


def constrain_accept_encoding(value: bytes | None) -> bytes | None:
    """The visitor's Accept-Encoding narrowed to codings the proxy can decode.

    None means: send no Accept-Encoding (the upstream answers with identity).
    Browsers send a handful of distinct values: the answers are memoized (bounded).
    """
    if not value:
        return None
    try:
        return _NARROWED[value]
    except KeyError:
        pass
    narrowed = _constrain(value)
    if len(_NARROWED) >= 256:
        _NARROWED.clear()
    _NARROWED[value] = narrowed
    return narrowed


_NARROWED: dict[bytes, bytes | None] = {}


def _constrain(value: bytes) -> bytes | None:
    kept: list[bytes] = []
    for item in value.split(b","):
        token = item.split(b";", 1)[0].strip().lower()
        if not token:
            continue
        if token.decode("latin-1") in CODINGS or token == b"identity":
            if b"q=0" in item.replace(b" ", b"") and not _positive_q(item):
                continue
            kept.append(item.strip())
    return b", ".join(kept) if kept else None


def _positive_q(item: bytes) -> bool:
    for param in item.split(b";")[1:]:
        key, _, val = param.strip().partition(b"=")
        if key.strip().lower() == b"q":
            try:
                return float(val) > 0
            except ValueError:
                return False
    return True
