"""Exact and near-duplicate chunk removal within a tenant, with the registry in Redis.

Each chunk gets an exact fingerprint (sha256 of its normalised text) and a MinHash signature over
word 5-shingles, banded for LSH. The first chunk to claim a fingerprint owns it; a later chunk of
another document (or a repeat inside the same document) whose text matches exactly, or whose
estimated Jaccard similarity with an owner reaches the threshold, is a duplicate: it is not
embedded or stored, so the paragraph is stored once and cited once.

Scope is (tenant, access groups): a paragraph shared by documents with different readers is kept
in both, or deduplication would hide it from one audience.

An owner counts only once its document version is published (or when it is an earlier chunk of
the very same document version): a chunk is never dropped in favour of a document that might
still fail. Two documents in flight at once with a shared paragraph may therefore both store it;
that costs a duplicate point, never lost text. A stale owner (its document was replaced or
deleted) is taken over by the next claimant.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis

from encoders.text import band_hashes, decode_signature, encode_signature, fingerprint, normalise, signature, similarity
from index.catalog import Catalog
from stores.keys import (
    dedupe_band_key,
    dedupe_exact_key,
    dedupe_held_key,
    dedupe_holders_key,
    dedupe_prefix,
    dedupe_signature_key,
)


@dataclass(frozen=True)
class Owner:
    doc_id: str
    version: str
    chunk: int

    def encode(self) -> str:
        return json.dumps([self.doc_id, self.version, self.chunk])

    @staticmethod
    def decode(raw: str) -> Owner:
        d, v, c = json.loads(raw)
        return Owner(d, v, int(c))


@dataclass(frozen=True)
class Decision:
    chunk: int
    duplicate_of: Owner | None  # None: keep (this chunk owns its text)
    similarity: float = 1.0


def acl_scope(groups: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(sorted(set(groups))).encode()).hexdigest()[:12]


class Deduper:
    def __init__(self, client: redis.Redis, threshold: float) -> None:
        self.r = client
        self.catalog = Catalog(client)
        self.threshold = threshold

    def decide(
        self, tenant: str, groups: Sequence[str], doc_id: str, version: str, texts: Sequence[str]
    ) -> list[Decision]:
        prefix = dedupe_prefix(tenant, acl_scope(groups))
        decisions: list[Decision] = []
        for index, text in enumerate(texts):
            me = Owner(doc_id, version, index)
            words = normalise(text)
            exact_key = dedupe_exact_key(prefix, fingerprint(words))
            owner = self._claim(tenant, exact_key, me)
            if owner is not None:
                decisions.append(Decision(index, owner))
                self._add_holder(prefix, owner, me)
                continue
            sig = signature(words)
            near, sim = self._near_owner(tenant, prefix, sig, me)
            if near is not None:
                # This text is represented by `near`, not by a point of ours: say so in the
                # exact claim too, or a later exact copy would defer to a chunk never stored.
                self.r.set(exact_key, near.encode())
                decisions.append(Decision(index, near, sim))
                self._add_holder(prefix, near, me)
                continue
            self._register(prefix, sig, me)
            decisions.append(Decision(index, None))
        return decisions

    # -- exact ------------------------------------------------------------------------------
    def _claim(self, tenant: str, key: str, me: Owner) -> Owner | None:
        """Claim `key` for `me`; return the live owner when it is somebody else."""
        if self.r.set(key, me.encode(), nx=True):
            return None
        raw = self.r.get(key)
        if raw is None:  # released between our SET and GET: try once more
            return None if self.r.set(key, me.encode(), nx=True) else self._claim(tenant, key, me)
        owner = Owner.decode(str(raw))
        if self._same_or_older_self(owner, me) or not self._is_live(tenant, owner, me):
            self.r.set(key, me.encode())
            return None
        return owner

    # -- near -------------------------------------------------------------------------------
    def _near_owner(self, tenant: str, prefix: str, sig: np.ndarray, me: Owner) -> tuple[Owner | None, float]:
        pipe = self.r.pipeline()
        for i, h in enumerate(band_hashes(sig)):
            pipe.smembers(dedupe_band_key(prefix, i, h))
        candidates: set[str] = set()
        for members in pipe.execute():
            candidates.update(members)
        best: tuple[Owner | None, float] = (None, 0.0)
        for raw in candidates:
            owner = Owner.decode(raw)
            if self._same_or_older_self(owner, me) or not self._is_live(tenant, owner, me):
                continue
            stored = self.r.get(dedupe_signature_key(prefix, raw))
            if stored is None:
                continue
            sim = similarity(decode_signature(str(stored)), sig)
            if sim >= self.threshold and sim > best[1]:
                best = (owner, sim)
        return best

    def _register(self, prefix: str, sig: np.ndarray, me: Owner) -> None:
        raw = me.encode()
        pipe = self.r.pipeline()
        pipe.set(dedupe_signature_key(prefix, raw), encode_signature(sig))
        for i, h in enumerate(band_hashes(sig)):
            pipe.sadd(dedupe_band_key(prefix, i, h), raw)
        pipe.execute()

    def _add_holder(self, prefix: str, owner: Owner, holder: Owner) -> None:
        """Remember who else carries this text, so a retired owner can hand it on."""
        pipe = self.r.pipeline()
        pipe.sadd(dedupe_holders_key(prefix, owner.encode()), holder.encode())
        pipe.sadd(dedupe_held_key(prefix, owner.doc_id, owner.version), owner.chunk)
        pipe.execute()

    # -- retiring an owner ------------------------------------------------------------------
    def orphans(self, tenant: str, groups: Sequence[str], doc_id: str, old: str, new: str) -> list[Owner]:
        """Holders that deduplicated against `doc_id`@`old` and lose their text when it retires.

        A holder whose text the new version still carries (the exact fingerprint is now claimed
        by `doc_id`@`new`) is handed to the new owner; the rest are returned, to be stored in
        their own right. Holders that are no longer published themselves are dropped.
        """
        prefix = dedupe_prefix(tenant, acl_scope(groups))
        held_key = dedupe_held_key(prefix, doc_id, old)
        orphaned: list[Owner] = []
        for raw_chunk in self.r.smembers(held_key):
            owner = Owner(doc_id, old, int(raw_chunk))
            holders_key = dedupe_holders_key(prefix, owner.encode())
            for raw in self.r.smembers(holders_key):
                holder = Owner.decode(str(raw))
                if holder.doc_id == doc_id or not self._published(tenant, holder):
                    continue
                orphaned.append(holder)
            self.r.delete(holders_key)
        self.r.delete(held_key)
        return orphaned

    def successor(self, tenant: str, groups: Sequence[str], text: str) -> Owner | None:
        """Who holds this exact text now, if anyone does."""
        raw = self.r.get(dedupe_exact_key(dedupe_prefix(tenant, acl_scope(groups)), fingerprint(normalise(text))))
        return Owner.decode(str(raw)) if raw is not None else None

    def adopt(self, tenant: str, groups: Sequence[str], holder: Owner, text: str) -> None:
        """`holder` now stores `text` itself: it owns the fingerprints."""
        prefix = dedupe_prefix(tenant, acl_scope(groups))
        words = normalise(text)
        self.r.set(dedupe_exact_key(prefix, fingerprint(words)), holder.encode())
        self._register(prefix, signature(words), holder)

    def hand_on(self, tenant: str, groups: Sequence[str], owner: Owner, holder: Owner) -> None:
        self._add_holder(dedupe_prefix(tenant, acl_scope(groups)), owner, holder)

    # -- deleting a document -----------------------------------------------------------------
    def forget(self, tenant: str, groups: Sequence[str], doc_id: str, version: str, texts: Sequence[str]) -> int:
        """Remove what `doc_id`@`version` left in the registry (its `texts` are its chunks, in
        order): the fingerprints it owns, its signatures and band entries, its places among other
        owners' holders, and its own holder and held sets. Returns how many entries went."""
        prefix = dedupe_prefix(tenant, acl_scope(groups))
        removed = 0
        for index, text in enumerate(texts):
            me = Owner(doc_id, version, index)
            raw = me.encode()
            words = normalise(text)
            exact_key = dedupe_exact_key(prefix, fingerprint(words))
            owner_raw = self.r.get(exact_key)
            pipe = self.r.pipeline()
            if owner_raw is not None:
                owner = Owner.decode(str(owner_raw))
                if owner.doc_id == doc_id:
                    pipe.delete(exact_key)
                else:  # this chunk was a duplicate of another document's: it no longer holds it
                    pipe.srem(dedupe_holders_key(prefix, owner.encode()), raw)
            pipe.delete(dedupe_signature_key(prefix, raw), dedupe_holders_key(prefix, raw))
            for i, h in enumerate(band_hashes(signature(words))):
                pipe.srem(dedupe_band_key(prefix, i, h), raw)
            removed += sum(int(n) for n in pipe.execute())
        removed += int(self.r.delete(dedupe_held_key(prefix, doc_id, version)))
        return removed

    # -- liveness ---------------------------------------------------------------------------
    @staticmethod
    def _same_or_older_self(owner: Owner, me: Owner) -> bool:
        """The same chunk again (a retry), or an earlier version of this very document."""
        if owner.doc_id != me.doc_id:
            return False
        return owner.version != me.version or owner.chunk == me.chunk

    def _is_live(self, tenant: str, owner: Owner, me: Owner) -> bool:
        if (owner.doc_id, owner.version) == (me.doc_id, me.version):
            return True  # an earlier chunk of this same document: it shares this document's fate
        return self._published(tenant, owner)

    def _published(self, tenant: str, owner: Owner) -> bool:
        return self.catalog.published_version(tenant, owner.doc_id) == owner.version
