"""``consentgate verify``: walk every chain segment and name the first bad record.

Pure logic over what a store returns (records in ``seq`` order, signed heads,
purge checkpoints, erasure attestations); nothing here knows SQL.

For each record, in ``seq`` order, with per-segment state:

1. its ``chain_seq`` is the next one expected -- or the gap is exactly covered by
   a signed purge checkpoint (then the expected ``prev_hash`` is the checkpoint's
   ``last_hash``); a gap without one means records were **removed**; a repeated or
   backwards position, or a segment without a signed head, means **inserted**;
2. its ``prev_hash`` is the previous record's ``hash`` (``genesis:<chain_id>`` for
   the first) -- else it was **inserted** or re-linked;
3. its content hashes to its ``hash`` -- else it was **altered**. An erased record
   cannot be re-hashed (its personal fields are gone): instead its signed erasure
   attestation must name this position and hash, and its kept fields must match
   the attested digest.

At the end every segment must stop exactly at its signed head (or at a checkpoint
ending there): fewer records means the **tail was removed**, a bad signature means
the head was forged.

What the log alone cannot show is a whole segment removed together with its head, or
the whole file rolled back to an older copy: everything left is consistent. For that
an auditor keeps the manifests of earlier exports (they list every chain head at the
time, signed) and passes them as ``earlier`` heads (``consentgate verify --against
MANIFEST``): each must still be in the log, as the record at that chain position with
that hash, or inside a signed purge checkpoint.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..chain import ACTIONS_CHAIN, HeadSigner, action_hash, canonical, genesis, link_hash
from ..store.base import (
    ActionHead,
    AuditAction,
    ChainHead,
    ConsentStore,
    Erasure,
    PurgeCheckpoint,
    StoredEvent,
)
from .columns import PERSONAL_FIELDS
from .proofs import (
    ERASURE_SALT,
    PURGE_SALT,
    KeyedSigner,
    checkpoint_message,
    erasure_message,
    fields_digest,
)

__all__ = [
    "Problem",
    "Verifier",
    "VerifyResult",
    "verify_actions",
    "verify_events",
    "verify_store",
]


@dataclass(frozen=True)
class Problem:
    """The first bad record. ``kind``: altered | inserted | missing | forged."""

    kind: str
    message: str
    seq: int | None = None
    chain_id: str = ""
    chain_seq: int | None = None
    event_id: str = ""

    def __str__(self) -> str:
        where = []
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        if self.event_id:
            where.append(f"event {self.event_id}")
        if self.chain_id:
            where.append(f"chain {self.chain_id} #{self.chain_seq}")
        return f"{self.kind}: {self.message}" + (f" ({', '.join(where)})" if where else "")


@dataclass
class VerifyResult:
    checked: int = 0
    chains: int = 0
    erased: int = 0
    purged: int = 0
    #: audit actions in the action chain, and older ones logged before it existed
    actions: int = 0
    actions_unchained: int = 0
    problem: Problem | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Bad(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


class Verifier:
    """Holds the signed material; :meth:`run` walks the records."""

    def __init__(
        self,
        secret_keys: list[str],
        heads: Iterable[ChainHead],
        checkpoints: Iterable[PurgeCheckpoint] = (),
        erasures: Iterable[Erasure] = (),
        earlier: Iterable[ChainHead] = (),
    ) -> None:
        self.head_signer = HeadSigner(secret_keys)
        self.purge_signer = KeyedSigner(secret_keys, PURGE_SALT)
        self.erase_signer = KeyedSigner(secret_keys, ERASURE_SALT)
        self.heads = {h.chain_id: h for h in heads}
        self.checkpoints: dict[tuple[str, int], PurgeCheckpoint] = {
            (c.chain_id, c.first_seq): c for c in checkpoints
        }
        self.erasures = {e.seq: e for e in erasures}
        #: chain_id -> (last chain_seq seen, its hash)
        self.state: dict[str, tuple[int, str]] = {}
        #: chain_id -> where the last record seen is (to name it when the next one
        #: shows it was rewritten)
        self.last_where: dict[str, dict[str, Any]] = {}
        #: (chain_id, chain_seq) -> hash: heads of earlier exports, not yet found
        self.earlier = {(h.chain_id, h.chain_seq): h for h in earlier}

    def _checkpoint(self, chain_id: str, first: int) -> PurgeCheckpoint | None:
        cp = self.checkpoints.get((chain_id, first))
        if cp is None:
            return None
        message = checkpoint_message(cp.chain_id, cp.first_seq, cp.last_seq, cp.last_hash)
        if not self.purge_signer.verify(message, cp.signature):
            raise _Bad(
                Problem(
                    "forged",
                    f"purge checkpoint for records {cp.first_seq}..{cp.last_seq} has a bad "
                    "signature",
                    chain_id=chain_id,
                    chain_seq=cp.first_seq,
                )
            )
        return cp

    def _skip_purged(self, chain_id: str, last: int, last_hash: str, upto: int) -> tuple[int, str]:
        """Follow checkpoints from ``last + 1`` while they stay below ``upto``."""
        while last + 1 < upto:
            cp = self._checkpoint(chain_id, last + 1)
            if cp is None or cp.last_seq >= upto:
                break
            last, last_hash = cp.last_seq, cp.last_hash
        return last, last_hash

    def check(self, rec: StoredEvent, result: VerifyResult) -> None:
        ev = rec.event
        where: dict[str, Any] = {
            "seq": rec.seq,
            "chain_id": rec.chain_id,
            "chain_seq": rec.chain_seq,
            "event_id": ev.event_id,
        }
        head = self.heads.get(rec.chain_id)
        if head is None:
            raise _Bad(Problem("inserted", "record of a chain with no signed head", **where))
        if rec.chain_seq > head.chain_seq:
            raise _Bad(
                Problem(
                    "inserted",
                    f"record beyond its chain's signed head (#{head.chain_seq})",
                    **where,
                )
            )
        if rec.chain_id not in self.state:
            result.chains += 1
        last, last_hash = self.state.get(rec.chain_id, (0, genesis(rec.chain_id)))
        last, last_hash = self._skip_purged(rec.chain_id, last, last_hash, rec.chain_seq)
        if rec.chain_seq <= last:
            raise _Bad(
                Problem("inserted", f"chain position repeats or goes back (after #{last})", **where)
            )
        if rec.chain_seq != last + 1:
            raise _Bad(
                Problem(
                    "missing",
                    f"records #{last + 1}..#{rec.chain_seq - 1} of this chain were removed "
                    "(no purge checkpoint covers them)",
                    **where,
                )
            )
        if rec.prev_hash != last_hash:
            before = self.last_where.get(rec.chain_id)
            position = self.state.get(rec.chain_id, (0, ""))[0]  # (not after a purge)
            if before is not None and position == rec.chain_seq - 1 and self._intact(rec):
                # This record is intact and links to another hash than the one the record
                # before it carries now: that one was edited and re-hashed.
                raise _Bad(
                    Problem(
                        "altered",
                        "content and hash were both changed (the next record links to the "
                        "original hash)",
                        **before,
                    )
                )
            raise _Bad(
                Problem(
                    "inserted",
                    "prev_hash does not match the previous record's hash "
                    "(inserted or re-linked record)",
                    **where,
                )
            )
        if rec.erased:
            self._check_erased(rec, where)
            result.erased += 1
        elif link_hash(rec.prev_hash, canonical(ev)) != rec.hash:
            raise _Bad(Problem("altered", "content does not match its hash", **where))
        self.state[rec.chain_id] = (rec.chain_seq, rec.hash)
        self.last_where[rec.chain_id] = where
        result.checked += 1
        seen = self.earlier.pop((rec.chain_id, rec.chain_seq), None)
        if seen is not None and seen.hash != rec.hash:
            raise _Bad(
                Problem(
                    "altered",
                    "the record an earlier export ended this chain at has another hash now "
                    "(the chain was rewritten)",
                    **where,
                )
            )

    @staticmethod
    def _intact(rec: StoredEvent) -> bool:
        """Whether ``rec``'s content, its prev_hash included, hashes to its hash."""
        return not rec.erased and link_hash(rec.prev_hash, canonical(rec.event)) == rec.hash

    def _check_erased(self, rec: StoredEvent, where: dict[str, Any]) -> None:
        att = self.erasures.get(rec.seq)
        if att is None:
            raise _Bad(Problem("altered", "marked erased without an erasure attestation", **where))
        message = erasure_message(att.chain_id, att.chain_seq, att.hash, att.fields_digest)
        if not self.erase_signer.verify(message, att.signature):
            raise _Bad(Problem("forged", "erasure attestation has a bad signature", **where))
        if (att.chain_id, att.chain_seq, att.hash) != (rec.chain_id, rec.chain_seq, rec.hash):
            raise _Bad(Problem("altered", "erasure attestation names another record", **where))
        if fields_digest(rec) != att.fields_digest:
            raise _Bad(Problem("altered", "kept fields of an erased record were changed", **where))
        row = rec.event.row()
        if any(row[f] for f in PERSONAL_FIELDS):
            raise _Bad(Problem("altered", "erased record carries personal fields again", **where))

    def finish(self, result: VerifyResult) -> None:
        for chain_id, head in self.heads.items():
            if not self.head_signer.verify(chain_id, head.chain_seq, head.hash, head.signature):
                raise _Bad(
                    Problem(
                        "forged",
                        "chain head signature does not verify with the configured keys",
                        chain_id=chain_id,
                        chain_seq=head.chain_seq,
                    )
                )
            last, last_hash = self.state.get(chain_id, (0, genesis(chain_id)))
            last, last_hash = self._skip_purged(chain_id, last, last_hash, head.chain_seq + 1)
            if last < head.chain_seq:
                raise _Bad(
                    Problem(
                        "missing",
                        f"records #{last + 1}..#{head.chain_seq} (the end of this chain, "
                        "up to its signed head) were removed",
                        chain_id=chain_id,
                        chain_seq=last + 1,
                    )
                )
            if last_hash != head.hash:
                raise _Bad(
                    Problem(
                        "altered",
                        "the chain's last record is not the signed head",
                        chain_id=chain_id,
                        chain_seq=last,
                    )
                )
        result.purged = sum(c.last_seq - c.first_seq + 1 for c in self.checkpoints.values())
        self._finish_earlier()

    def _finish_earlier(self) -> None:
        """Every earlier head left over must lie inside a signed purge checkpoint."""
        for (chain_id, chain_seq), head in sorted(self.earlier.items()):
            if not self.head_signer.verify(chain_id, chain_seq, head.hash, head.signature):
                raise _Bad(
                    Problem(
                        "forged",
                        "a head in the earlier manifest does not verify with the configured keys",
                        chain_id=chain_id,
                        chain_seq=chain_seq,
                    )
                )
            if any(
                c.chain_id == chain_id
                and c.first_seq <= chain_seq <= c.last_seq
                and self._checkpoint(chain_id, c.first_seq) is not None
                for c in self.checkpoints.values()
            ):
                continue  # purged by retention, under a signed checkpoint
            now = self.heads.get(chain_id)
            if now is None:
                message = (
                    f"the whole chain (#{chain_seq} and everything before it, which an "
                    "earlier export covered) is gone, its head too"
                )
            else:
                message = (
                    f"record #{chain_seq}, which an earlier export covered, is gone; the "
                    f"chain now ends at #{now.chain_seq} (rolled back?)"
                )
            raise _Bad(Problem("missing", message, chain_id=chain_id, chain_seq=chain_seq))

    async def run(self, records: AsyncIterable[StoredEvent]) -> VerifyResult:
        result = VerifyResult()
        try:
            async for rec in records:
                self.check(rec, result)
            self.finish(result)
        except _Bad as bad:
            result.problem = bad.problem
        return result


async def verify_events(
    secret_keys: list[str],
    records: AsyncIterable[StoredEvent],
    heads: Iterable[ChainHead],
    checkpoints: Iterable[PurgeCheckpoint] = (),
    erasures: Iterable[Erasure] = (),
    earlier: Iterable[ChainHead] = (),
) -> VerifyResult:
    """Walk ``records`` (``seq`` order) against the signed material."""
    return await Verifier(secret_keys, heads, checkpoints, erasures, earlier).run(records)


async def verify_actions(
    secret_keys: list[str],
    actions: AsyncIterable[AuditAction],
    head: ActionHead | None,
    later_head: Callable[[], Awaitable[ActionHead | None]],
    result: VerifyResult,
    earlier: Iterable[ActionHead] = (),
) -> None:
    """Walk the audit action chain (``chain.action_hash``); sets ``result.problem`` at the
    first bad action.

    ``head`` is read before the walk; actions logged while it runs are covered by
    ``later_head()``, read after it (the walk and the heads are not one snapshot).
    ``earlier``: action heads from earlier exports' manifests: the action at each of
    their positions must still be there with that hash, so a log cut back to an older
    head, or wiped with its head, is caught too."""
    signer = HeadSigner(secret_keys)
    where: dict[str, Any] = {"chain_id": ACTIONS_CHAIN}
    marks: dict[int, list[tuple[str, str]]] = {}
    for mark, what in [(head, "its signed head"), *((e, "an earlier export") for e in earlier)]:
        if mark is None:
            continue
        if not signer.verify(ACTIONS_CHAIN, mark.count, mark.hash, mark.signature):
            message = f"the action head of {what} does not verify"
            result.problem = Problem("forged", message, **where)
            return
        marks.setdefault(mark.count, []).append((mark.hash, what))
    prev = genesis(ACTIONS_CHAIN)
    try:
        async for action in actions:
            n = result.actions + 1
            if not action.hash:
                if result.actions:
                    raise _Bad(
                        Problem(
                            "altered",
                            f"audit action #{action.id} was taken out of the action chain",
                            chain_seq=n,
                            **where,
                        )
                    )
                result.actions_unchained += 1  # logged before the chain existed
                continue
            if action.prev_hash != prev:
                raise _Bad(
                    Problem(
                        "missing",
                        f"audit action #{action.id} does not link to the one before it "
                        "(an action was removed or inserted)",
                        chain_seq=n,
                        **where,
                    )
                )
            if action_hash(action.prev_hash, action) != action.hash:
                raise _Bad(
                    Problem(
                        "altered",
                        f"audit action #{action.id} does not match its hash",
                        chain_seq=n,
                        **where,
                    )
                )
            for hash_, what in marks.get(n, ()):
                if hash_ != action.hash:
                    raise _Bad(
                        Problem(
                            "altered",
                            f"audit action #{action.id} is not the one {what} ends at",
                            chain_seq=n,
                            **where,
                        )
                    )
            prev = action.hash
            result.actions = n
        count = result.actions
        beyond = [(n, what) for n, found in marks.items() if n > count for _, what in found]
        if beyond:
            n, what = max(beyond)
            raise _Bad(
                Problem(
                    "missing",
                    f"the action chain holds {count} action(s), {what} {n}: actions were "
                    "removed from its end",
                    chain_seq=count,
                    **where,
                )
            )
        if count > (head.count if head is not None else 0):
            # logged while the walk ran, or never signed: the head read now must cover it
            later = await later_head()
            covered = (
                later is not None
                and later.count >= count
                and signer.verify(ACTIONS_CHAIN, later.count, later.hash, later.signature)
                and (later.count > count or later.hash == prev)
            )
            if not covered:
                raise _Bad(
                    Problem(
                        "inserted",
                        f"the action chain holds {count} action(s), beyond its signed head "
                        f"({head.count if head is not None else 0})",
                        chain_seq=count,
                        **where,
                    )
                )
    except _Bad as bad:
        result.problem = bad.problem


async def verify_store(
    store: ConsentStore,
    secret_keys: list[str],
    earlier: Iterable[ChainHead] = (),
    earlier_actions: Iterable[ActionHead] = (),
) -> VerifyResult:
    """Verify a whole store: one consistent snapshot of heads, then every record, then
    the audit action chain; ``earlier`` and ``earlier_actions``: the chain heads and
    action heads of earlier exports' manifests, which must still be there."""
    snap = await store.snapshot()
    checkpoints = await store.purge_checkpoints()
    erasures = await store.erasures()

    async def records() -> AsyncIterator[StoredEvent]:
        async for rec in store.iter_events():
            if rec.seq > snap.max_seq:
                return
            yield rec

    result = await verify_events(secret_keys, records(), snap.heads, checkpoints, erasures, earlier)
    if result.ok:
        head = await store.action_head()
        await verify_actions(
            secret_keys, store.iter_actions(), head, store.action_head, result, earlier_actions
        )
    return result
