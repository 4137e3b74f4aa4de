"""Export manifests and ``consentgate verify-export``.

Every export comes with a manifest (``FILE.manifest.json`` next to ``-o FILE``;
over HTTP at ``/_consent/admin/api/exports/{id}/manifest``)::

    {"manifest": "consentgate-export/1", "file": "log.csv", "format": "csv",
     "bom": false, "columns": [...], "rows": 1234, "bytes": 567890,
     "sha256": "...", "first_created_at": "...", "last_created_at": "...",
     "first_seq": 1, "last_seq": 1234, "filters": {"site_id": "demo"},
     "exported_at": "...", "log_max_seq": 1234,
     "chains": {"<chain_id>": {"rows", "first_chain_seq", "last_chain_seq", "last_hash"}},
     "heads": [{"chain_id", "chain_seq", "hash", "signature"}],
     "signature": "..."}

``signature`` is an HMAC (salt ``consentgate.export-manifest``) over the canonical
JSON of every other key; ``heads`` carry the log's own signed chain heads at
export time. :func:`check_export` re-reads a file an auditor received and reports
the first thing that does not match (with its line number when it is a record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..chain import HeadSigner, canonical_row, link_hash
from .columns import EXPORT_COLUMNS
from .formats import BOM, FormatError, read_rows
from .proofs import MANIFEST_SALT, KeyedSigner

__all__ = ["MANIFEST_VERSION", "ExportCheck", "Manifest", "check_export", "manifest_path"]

MANIFEST_VERSION = "consentgate-export/1"


def manifest_path(path: str | Path) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".manifest.json")


@dataclass
class Manifest:
    file: str
    format: str
    bom: bool
    columns: list[str]
    rows: int
    bytes: int
    sha256: str
    first_created_at: str
    last_created_at: str
    first_seq: int
    last_seq: int
    filters: dict[str, str]
    exported_at: str
    log_max_seq: int
    chains: dict[str, dict[str, Any]]
    heads: list[dict[str, Any]]
    manifest: str = MANIFEST_VERSION
    signature: str = ""
    export_id: str = ""
    #: the audit action chain's signed head at export time (``count``, ``hash``,
    #: ``signature``); None before the first chained action (and in older manifests)
    action_head: dict[str, Any] | None = None

    def body(self) -> str:
        doc = asdict(self)
        doc.pop("signature")
        if doc["action_head"] is None:  # what older manifests signed
            doc.pop("action_head")
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def sign(self, secret_keys: Sequence[str]) -> Manifest:
        self.signature = KeyedSigner(secret_keys, MANIFEST_SALT).sign(self.body())
        return self

    def signature_ok(self, secret_keys: Sequence[str]) -> bool:
        return KeyedSigner(secret_keys, MANIFEST_SALT).verify(self.body(), self.signature)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("manifest") != MANIFEST_VERSION:
            raise ValueError(f"not a {MANIFEST_VERSION} manifest")
        try:
            return cls(**doc)
        except TypeError as exc:
            raise ValueError(f"manifest has unexpected or missing keys: {exc}") from None


@dataclass
class ExportCheck:
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    line: int | None = None

    def fail(self, message: str, line: int | None = None) -> None:
        if self.ok:
            self.line = line
        self.ok = False
        self.problems.append(f"line {line}: {message}" if line else message)


def _file_digest(path: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return sha.hexdigest(), size


def check_export(path: Path, manifest: Manifest, secret_keys: Sequence[str]) -> ExportCheck:
    """Check ``path`` against ``manifest``: signature, digest, then every record."""
    result = ExportCheck()
    if not manifest.signature_ok(secret_keys):
        result.fail("manifest signature does not verify with this installation's keys")
    head_signer = HeadSigner(list(secret_keys))
    for h in manifest.heads:
        if not head_signer.verify(h["chain_id"], h["chain_seq"], h["hash"], h["signature"]):
            result.fail(f"chain head {h['chain_id']} in the manifest has a bad signature")
    digest, size = _file_digest(path)
    if size != manifest.bytes:
        result.fail(f"file is {size} bytes, manifest says {manifest.bytes}")
    if digest != manifest.sha256:
        result.fail(f"SHA-256 {digest} differs from the manifest's {manifest.sha256}")
    if list(manifest.columns) != list(EXPORT_COLUMNS):
        result.fail("manifest columns differ from this consentgate's export columns")
        return result
    _check_records(path, manifest, result)
    return result


def _check_records(path: Path, manifest: Manifest, result: ExportCheck) -> None:
    """Re-hash every record and check links between neighbours of one chain."""
    heads = {h["chain_id"]: h for h in manifest.heads}
    last: dict[str, tuple[int, str]] = {}
    lo = hi = ""
    with path.open("rb") as raw:
        if raw.read(3) != BOM:
            raw.seek(0)
        text = (line.decode("utf-8", errors="replace") for line in raw)
        try:
            for n, row in read_rows(text, manifest.format):
                result.rows += 1
                created = row["created_at"]
                lo = min(lo, created) if lo else created
                hi = max(hi, created)
                _check_row(n, row, heads, last, result)
        except FormatError as exc:
            result.fail(str(exc).split(": ", 1)[1], exc.line)
            return
    if result.rows != manifest.rows:
        result.fail(f"file holds {result.rows} records, manifest says {manifest.rows}")
    if result.rows and (lo, hi) != (manifest.first_created_at, manifest.last_created_at):
        result.fail(f"time range {lo}..{hi} differs from the manifest's")


def _check_row(
    n: int,
    row: dict[str, Any],
    heads: dict[str, dict[str, Any]],
    last: dict[str, tuple[int, str]],
    result: ExportCheck,
) -> None:
    chain_id, pos = row["chain_id"], row["chain_seq"]
    if not row["erased"] and link_hash(row["prev_hash"], canonical_row(row)) != row["hash"]:
        result.fail(f"record seq {row['seq']} (event {row['event_id']}) does not match its hash", n)
    prev = last.get(chain_id)
    if prev and prev[0] + 1 == pos and prev[1] != row["prev_hash"]:
        result.fail(f"record seq {row['seq']} does not link to the record before it", n)
    head = heads.get(chain_id)
    if head is not None and pos > head["chain_seq"]:
        result.fail(f"record seq {row['seq']} lies beyond its chain's signed head", n)
    last[chain_id] = (pos, row["hash"])
