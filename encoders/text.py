"""Text as words, shingles and fingerprints: what near-duplicate checks on both paths compare.

Ingestion's dedupe registry (exact fingerprints, MinHash signatures banded for LSH) and context
packing at query time (Jaccard over word 5-shingles) judge "the same paragraph" on the same words.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import numpy as np
from datasketch import MinHash

from keel.words import words

SHINGLE = 5
NUM_PERM = 128
BANDS = 16  # 16 bands x 8 rows: a pair at Jaccard 0.85 shares a band with p ~ 0.994
ROWS = NUM_PERM // BANDS


def normalise(text: str) -> list[str]:
    """Lower-case words, punctuation and spacing dropped (`keel.words`)."""
    return words(text)


def word_shingles(words: Sequence[str]) -> list[str]:
    return [" ".join(words[i : i + SHINGLE]) for i in range(max(1, len(words) - SHINGLE + 1))]


def shingles(text: str) -> frozenset[str]:
    return frozenset(word_shingles(normalise(text)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def fingerprint(words: Sequence[str]) -> str:
    """Exact-duplicate key: the same words in the same order."""
    return hashlib.sha256(" ".join(words).encode()).hexdigest()


def signature(words: Sequence[str]) -> np.ndarray:
    """MinHash over word 5-shingles: the share of equal entries estimates Jaccard similarity."""
    m = MinHash(num_perm=NUM_PERM, seed=7)
    m.update_batch([s.encode() for s in word_shingles(words)])
    return np.asarray(m.hashvalues, dtype=np.uint64)


def band_hashes(sig: np.ndarray) -> list[str]:
    """LSH bands: two signatures that share a band are candidates for a near-duplicate."""
    return [hashlib.blake2b(sig[i * ROWS : (i + 1) * ROWS].tobytes(), digest_size=8).hexdigest() for i in range(BANDS)]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def encode_signature(sig: np.ndarray) -> str:
    """As text, so it lives in Redis beside every other (decoded) value."""
    return base64.b64encode(sig.astype(np.uint64).tobytes()).decode()


def decode_signature(raw: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(raw), dtype=np.uint64)
