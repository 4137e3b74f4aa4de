"""A minimal MaxMind DB (.mmdb) writer for tests: a handful of networks -> a file
``maxminddb`` can open. Nothing is downloaded.

Format (https://maxmind.github.io/MaxMind-DB/): a binary search tree over the
address bits (24-bit records: node index, "no data" = node_count, or data
pointer = node_count + 16 + offset), 16 zero bytes, the data section, then
``\\xab\\xcd\\xefMaxMind.com`` and the metadata map. IPv4 networks live under
``::/96`` of the IPv6 tree.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
POINTER, UTF8, DOUBLE, UINT16, UINT32, MAP, UINT64, ARRAY, BOOLEAN = 1, 2, 3, 5, 6, 7, 9, 11, 14


def _control(type_: int, size: int) -> bytes:
    if size < 29:
        first, extra = size, b""
    elif size < 285:
        first, extra = 29, bytes([size - 29])
    elif size < 65821:
        first, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        first, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_ <= 7:
        return bytes([(type_ << 5) | first]) + extra
    return bytes([first, type_ - 7]) + extra


def _uint(value: int, type_: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return _control(type_, len(raw)) + raw


def encode(value: Any) -> bytes:
    """Encode a Python value in the MaxMind DB data format."""
    if isinstance(value, bool):
        return _control(BOOLEAN, int(value))
    if isinstance(value, str):
        raw = value.encode()
        return _control(UTF8, len(raw)) + raw
    if isinstance(value, int):
        return _uint(value, UINT32 if value < 2**32 else UINT64)
    if isinstance(value, dict):
        return _control(MAP, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())
    if isinstance(value, list):
        return _control(ARRAY, len(value)) + b"".join(encode(v) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class MMDBWriter:
    def __init__(self, database_type: str = "consentgate-test") -> None:
        self.database_type = database_type
        self.nodes: list[list[Any]] = [[None, None]]  # records: int node | bytes data | None

    def insert(self, network: str, record: dict[str, Any]) -> None:
        net = ipaddress.ip_network(network, strict=False)
        value, prefix = int(net.network_address), net.prefixlen
        if net.version == 4:
            prefix += 96
        data, node = encode(record), 0
        for depth in range(prefix):
            bit = (value >> (127 - depth)) & 1  # an IPv4 value has 96 leading zero bits
            if depth == prefix - 1:
                self.nodes[node][bit] = data
                return
            child = self.nodes[node][bit]
            if not isinstance(child, int):  # None or data: split into a node
                self.nodes.append([child, child])
                child = self.nodes[node][bit] = len(self.nodes) - 1
            node = child

    def to_bytes(self) -> bytes:
        count = len(self.nodes)
        section, offsets = bytearray(), {}
        tree = bytearray()
        for left_right in self.nodes:
            for rec in left_right:
                if isinstance(rec, int):
                    num = rec
                elif rec is None:
                    num = count
                else:
                    if rec not in offsets:
                        offsets[rec] = len(section)
                        section += rec
                    num = count + 16 + offsets[rec]
                tree += num.to_bytes(3, "big")
        meta = (
            _control(MAP, 9)
            + encode("node_count")
            + _uint(count, UINT32)
            + encode("record_size")
            + _uint(24, UINT16)
            + encode("ip_version")
            + _uint(6, UINT16)
            + encode("database_type")
            + encode(self.database_type)
            + encode("languages")
            + encode(["en"])
            + encode("binary_format_major_version")
            + _uint(2, UINT16)
            + encode("binary_format_minor_version")
            + _uint(0, UINT16)
            + encode("build_epoch")
            + _uint(1_700_000_000, UINT64)
            + encode("description")
            + encode({"en": "consentgate test database"})
        )
        return bytes(tree) + bytes(16) + bytes(section) + METADATA_MARKER + meta

    def write(self, path: Path) -> Path:
        path.write_bytes(self.to_bytes())
        return path
