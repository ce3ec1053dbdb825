"""`keel report ab`: two prompt versions (or models, or index versions) side by side over a period.

Read from the answers' records and the feedback on them (`stores.feedback`). Per arm: answers,
the degraded rate, p95 latency, cost per request and per successful answer (answered, not
degraded, not thumbed down), the feedback and thumbs-down rates, and the JSON parse-error rate.
Each difference between the arms comes with its confidence: a two-proportion z-test for rates,
and for latency and cost a permutation test on the difference (p95, and the mean), so a small
sample says it is small instead of declaring a winner.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from stores import feedback
from stores.keys import answer_key

DIMENSIONS = {"prompt": "prompt_id", "model": "model", "index": "embedding_version", "label": "prompt_label"}
PERMUTATIONS = 2000


@dataclass(frozen=True, kw_only=True)
class Line:
    metric: str
    a: float
    b: float
    p_value: float | None  # two-sided: how likely a difference this large is with no real one

    @property
    def confidence(self) -> str:
        if self.p_value is None:
            return "-"
        return "significant" if self.p_value < 0.05 else "not significant"


def records(r: redis.Redis, tenant: str, since: float, until: float) -> list[dict[str, Any]]:
    """The tenant's answers in [since, until), each with its feedback rating ("" when none)."""
    keys = list(r.scan_iter(match=answer_key(tenant, "*"), count=1000))
    rated = {f["request_id"]: f["rating"] for f in feedback.given(r, tenant)}
    out = []
    for start in range(0, len(keys), 500):
        for raw in r.mget(keys[start : start + 500]):
            if not raw:
                continue
            rec = feedback.AnswerRecord(**json.loads(str(raw)))
            if since <= rec.at < until:
                out.append({**vars(rec), "rating": rated.get(rec.request_id, "")})
    return out


def successful(rec: dict[str, Any]) -> bool:
    return bool(rec["answered"]) and not rec["degraded"] and rec["rating"] != "down"


def compare(recs: Sequence[dict[str, Any]], dimension: str, a: str, b: str, seed: int = 7) -> list[Line]:
    field = DIMENSIONS[dimension]
    arm_a = [x for x in recs if x[field] == a]
    arm_b = [x for x in recs if x[field] == b]
    rng = random.Random(seed)
    lines = [Line(metric="answers", a=len(arm_a), b=len(arm_b), p_value=None)]
    rates: list[tuple[str, Callable[[dict[str, Any]], bool]]] = [
        ("degraded rate", lambda x: bool(x["degraded"])),
        ("success rate", successful),
        ("feedback rate", lambda x: bool(x["rating"])),
        ("thumbs-down rate", lambda x: x["rating"] == "down"),
        ("parse-error rate", lambda x: bool(x["json_error"])),
    ]
    for name, test in rates:
        ka, kb = sum(map(test, arm_a)), sum(map(test, arm_b))
        lines.append(
            Line(
                metric=name,
                a=_rate(ka, len(arm_a)),
                b=_rate(kb, len(arm_b)),
                p_value=_z(ka, len(arm_a), kb, len(arm_b)),
            )
        )
    ms_a, ms_b = [float(x["ms"]) for x in arm_a], [float(x["ms"]) for x in arm_b]
    lines.append(Line(metric="p95 latency ms", a=_p95(ms_a), b=_p95(ms_b), p_value=_permutation(ms_a, ms_b, _p95, rng)))
    cost_a, cost_b = [float(x["cost_usd"]) for x in arm_a], [float(x["cost_usd"]) for x in arm_b]
    lines.append(
        Line(
            metric="cost per request usd",
            a=_mean(cost_a),
            b=_mean(cost_b),
            p_value=_permutation(cost_a, cost_b, _mean, rng),
        )
    )
    ok_a, ok_b = sum(map(successful, arm_a)), sum(map(successful, arm_b))
    lines.append(
        Line(
            metric="cost per successful answer usd",
            a=sum(cost_a) / ok_a if ok_a else math.nan,
            b=sum(cost_b) / ok_b if ok_b else math.nan,
            p_value=None,  # a ratio of two sums: its parts' tests above carry the confidence
        )
    )
    return lines


def _rate(k: int, n: int) -> float:
    return k / n if n else math.nan


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def _p95(xs: Sequence[float]) -> float:
    if not xs:
        return math.nan
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]


def _z(ka: int, na: int, kb: int, nb: int) -> float | None:
    """Two-proportion z-test, two-sided (None: too few to say)."""
    if na < 2 or nb < 2:
        return None
    pooled = (ka + kb) / (na + nb)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    if se == 0:
        return 1.0
    z = abs(ka / na - kb / nb) / se
    return math.erfc(z / math.sqrt(2))


def _permutation(
    a: Sequence[float], b: Sequence[float], stat: Callable[[Sequence[float]], float], rng: random.Random
) -> float | None:
    """Two-sided permutation test of stat(a) - stat(b) (None: too few to say)."""
    if len(a) < 2 or len(b) < 2:
        return None
    observed = abs(stat(a) - stat(b))
    pooled = [*a, *b]
    extreme = 0
    for _ in range(PERMUTATIONS):
        rng.shuffle(pooled)
        if abs(stat(pooled[: len(a)]) - stat(pooled[len(a) :])) >= observed - 1e-12:
            extreme += 1
    return (extreme + 1) / (PERMUTATIONS + 1)
