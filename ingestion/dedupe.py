"""Exact and near-duplicate chunk removal within a tenant, with the registry in Redis.

Each chunk gets an exact fingerprint (sha256 of its normalised text) and a MinHash signature over
word 5-shingles, banded for LSH. The first chunk to claim a fingerprint owns it; a later chunk of
another document (or a repeat inside the same document) whose text matches exactly, or whose
estimated Jaccard similarity with an owner reaches the threshold, is a duplicate: it is not
embedded or stored, so the paragraph is stored once and cited once.

Scope is (tenant, access groups): a paragraph shared by documents with different readers is kept
in both, or deduplication would hide it from one audience.

An owner is live while its document's published (or in-flight) version is the owner's version;
a stale owner (its document was replaced or deleted) is taken over by the next claimant.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import redis
from datasketch import MinHash

from keel.redis_keys import doc_key

NUM_PERM = 128
BANDS = 16  # 16 bands x 8 rows: a pair at Jaccard 0.85 shares a band with p ~ 0.994
ROWS = NUM_PERM // BANDS
SHINGLE = 5

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Owner:
    doc_id: str
    version: str
    chunk: int

    def encode(self) -> str:
        return json.dumps([self.doc_id, self.version, self.chunk])

    @staticmethod
    def decode(raw: str | bytes) -> Owner:
        d, v, c = json.loads(raw)
        return Owner(d, v, int(c))


@dataclass(frozen=True)
class Decision:
    chunk: int
    duplicate_of: Owner | None  # None: keep (this chunk owns its text)
    similarity: float = 1.0


def normalise(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def fingerprint(words: Sequence[str]) -> str:
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


def signature(words: Sequence[str]) -> np.ndarray:
    shingles = [" ".join(words[i : i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))]
    m = MinHash(num_perm=NUM_PERM, seed=7)
    m.update_batch([s.encode() for s in shingles])
    return np.asarray(m.hashvalues, dtype=np.uint64)


def band_hashes(sig: np.ndarray) -> list[str]:
    return [hashlib.blake2b(sig[i * ROWS : (i + 1) * ROWS].tobytes(), digest_size=8).hexdigest() for i in range(BANDS)]


def acl_scope(groups: Sequence[str]) -> str:
    return hashlib.sha256("\x00".join(sorted(set(groups))).encode()).hexdigest()[:12]


class Deduper:
    def __init__(self, client: redis.Redis, threshold: float) -> None:
        self.r = client
        self.threshold = threshold

    def decide(
        self, tenant: str, groups: Sequence[str], doc_id: str, version: str, texts: Sequence[str]
    ) -> list[Decision]:
        prefix = f"keel:dd:{tenant}:{acl_scope(groups)}"
        decisions: list[Decision] = []
        for index, text in enumerate(texts):
            me = Owner(doc_id, version, index)
            words = normalise(text)
            exact_key = f"{prefix}:exact:{fingerprint(words)}"
            owner = self._claim(tenant, exact_key, me)
            if owner is not None:
                decisions.append(Decision(index, owner))
                self._add_holder(prefix, owner, me)
                continue
            sig = signature(words)
            near, sim = self._near_owner(tenant, prefix, sig, me)
            if near is not None:
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
        owner = Owner.decode(raw)
        if self._same_or_older_self(owner, me) or not self._is_live(tenant, owner):
            self.r.set(key, me.encode())
            return None
        return owner

    # -- near -------------------------------------------------------------------------------
    def _near_owner(self, tenant: str, prefix: str, sig: np.ndarray, me: Owner) -> tuple[Owner | None, float]:
        bands = band_hashes(sig)
        pipe = self.r.pipeline()
        for i, h in enumerate(bands):
            pipe.smembers(f"{prefix}:band:{i}:{h}")
        candidates: set[str] = set()
        for members in pipe.execute():
            candidates.update(m.decode() if isinstance(m, bytes) else m for m in members)
        best: tuple[Owner | None, float] = (None, 0.0)
        for raw in candidates:
            owner = Owner.decode(raw)
            if self._same_or_older_self(owner, me) or not self._is_live(tenant, owner):
                continue
            stored = self.r.get(f"{prefix}:sig:{raw}")
            if stored is None:
                continue
            sim = float(
                np.mean(np.frombuffer(stored if isinstance(stored, bytes) else stored.encode(), dtype=np.uint64) == sig)
            )
            if sim >= self.threshold and sim > best[1]:
                best = (owner, sim)
        return best

    def _register(self, prefix: str, sig: np.ndarray, me: Owner) -> None:
        raw = me.encode()
        pipe = self.r.pipeline()
        pipe.set(f"{prefix}:sig:{raw}", sig.tobytes())
        for i, h in enumerate(band_hashes(sig)):
            pipe.sadd(f"{prefix}:band:{i}:{h}", raw)
        pipe.execute()

    def _add_holder(self, prefix: str, owner: Owner, holder: Owner) -> None:
        # Who else carries this text: kept so a retired owner can hand its point on (see notes).
        self.r.sadd(f"{prefix}:holders:{owner.encode()}", holder.encode())

    # -- liveness ---------------------------------------------------------------------------
    @staticmethod
    def _same_or_older_self(owner: Owner, me: Owner) -> bool:
        """The same chunk again (a retry), or an earlier version of this very document."""
        if owner.doc_id != me.doc_id:
            return False
        return owner.version != me.version or owner.chunk == me.chunk

    def _is_live(self, tenant: str, owner: Owner) -> bool:
        published, staging = self.r.hmget(doc_key(tenant, owner.doc_id), ["version", "staging"])
        live = {v.decode() if isinstance(v, bytes) else v for v in (published, staging) if v}
        return owner.version in live
