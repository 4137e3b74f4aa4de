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
export time. With the installation's Ed25519 key (:mod:`~consentgate.audit.keys`)
the manifest also carries ``public_key``, an ``ed25519`` signature over the same
canonical JSON, and an ``ed25519`` signature on every head (and on ``action_head``)
over ``chain-head|chain_id|chain_seq|hash``: ``verify-export --public-key`` checks
those without the server's secret. :func:`check_export` re-reads a file an auditor
received and reports the first thing that does not match (with its line number when it is a record).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..chain import ACTIONS_CHAIN, HeadSigner, canonical_row, head_statement, link_hash
from .columns import EXPORT_COLUMNS
from .formats import BOM, FormatError, read_rows
from .keys import SigningKey, public_key_text, verify_signature
from .proofs import MANIFEST_SALT, KeyedSigner

__all__ = [
    "MANIFEST_VERSION",
    "ExportCheck",
    "Manifest",
    "check_export",
    "manifest_path",
]

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
    #: the Ed25519 public key (``ed25519:BASE64``) and its signature over :meth:`body`;
    #: "" in manifests made without a key pair (and in older ones)
    public_key: str = ""
    ed25519: str = ""

    def body(self) -> str:
        doc = asdict(self)
        doc.pop("signature")
        doc.pop("ed25519")
        if doc["action_head"] is None:  # what older manifests signed
            doc.pop("action_head")
        if not doc["public_key"]:
            doc.pop("public_key")
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    def sign(self, secret_keys: Sequence[str], signing_key: SigningKey | None = None) -> Manifest:
        """HMAC-sign; with ``signing_key`` first add the Ed25519 head signatures and the
        public key, then Ed25519-sign the same body."""
        if signing_key is not None:
            self.public_key = signing_key.public_text
            # heads are signed when written; one from before key pairs (or signed by
            # another node's key) is signed now, by the key this manifest names
            heads = [(h, h["chain_id"], h["chain_seq"]) for h in self.heads]
            if self.action_head is not None:
                heads.append((self.action_head, ACTIONS_CHAIN, self.action_head["count"]))
            for h, chain_id, seq in heads:
                statement = head_statement(chain_id, seq, h["hash"])
                if not verify_signature(signing_key.public, statement, h.get("ed25519", "")):
                    h["ed25519"] = signing_key.sign(statement)
        body = self.body()
        self.signature = KeyedSigner(secret_keys, MANIFEST_SALT).sign(body)
        self.ed25519 = signing_key.sign(body) if signing_key is not None else ""
        return self

    def public_signatures_ok(self, key: Ed25519PublicKey) -> list[str]:
        """What does not verify with ``key`` (empty when all is well)."""
        problems: list[str] = []
        if not self.ed25519:
            return ["the manifest has no Ed25519 signature (made before key pairs existed)"]
        if self.public_key and self.public_key != public_key_text(key):
            problems.append(f"the manifest was signed by another key ({self.public_key})")
        if not verify_signature(key, self.body(), self.ed25519):
            problems.append("manifest Ed25519 signature does not verify with this public key")
        for h in self.heads:
            statement = head_statement(h["chain_id"], h["chain_seq"], h["hash"])
            if not verify_signature(key, statement, str(h.get("ed25519", ""))):
                problems.append(f"chain head {h['chain_id']} has no valid Ed25519 signature")
        a = self.action_head
        if a is not None:
            statement = head_statement(ACTIONS_CHAIN, a["count"], a["hash"])
            if not verify_signature(key, statement, str(a.get("ed25519", ""))):
                problems.append("the audit action head has no valid Ed25519 signature")
        return problems

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


def check_export(
    path: Path,
    manifest: Manifest,
    secret_keys: Sequence[str] = (),
    public_key: Ed25519PublicKey | None = None,
) -> ExportCheck:
    """Check ``path`` against ``manifest``: signatures (HMAC with ``secret_keys``,
    Ed25519 with ``public_key``; at least one), digest, then every record."""
    if not secret_keys and public_key is None:
        raise ValueError("check_export needs the secret keys or the public key")
    result = ExportCheck()
    if public_key is not None:
        for problem in manifest.public_signatures_ok(public_key):
            result.fail(problem)
    if secret_keys:
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
