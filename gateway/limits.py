"""Limits and quotas per API key and per tenant, enforced in Redis for every API process at once.

Each scope (the key, its tenant) may set:
- `rpm`: requests per minute, smoothed by GCRA (a burst of up to `rpm * BURST_S / 60` at once);
- `tpm`: model tokens per minute, also GCRA over tokens: admission reserves `prompt + max_output`
  tokens and `settle` gives back what the answer did not use (or takes what it used beyond);
- `concurrent`: requests in flight (a sorted set of request ids, each with an expiry, so a
  crashed process cannot leak a slot for longer than `INFLIGHT_TTL_S`);
- `budget_usd`: spend per calendar month (UTC); checked at admission, charged at `settle`.
One Lua script checks every limit of both scopes and applies them all or none, so two processes
can never both take the last unit. Refusals carry the seconds until the limiter would admit the
request (Retry-After) and the policy that refused it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from keel.errors import BadInput, ExceedsLimit, KeelError, LimiterUnavailable, RateLimited
from stores.keys import limit_key, tenant_limits_key

TENANT_LIMITS_TTL_S = 5.0
BURST_S = 10  # GCRA burst tolerance: this many seconds' worth of requests may arrive at once
INFLIGHT_TTL_S = 300  # longer than any query may run
MICRO = 1_000_000  # spend is kept in micro-dollars, an integer
ROUTE_UNITS = {"ingest": "KB of uploads"}  # what a route family's `tpm` counts


@dataclass(frozen=True, kw_only=True)
class Limits:
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None
    budget_usd: float | None = None  # per calendar month, UTC

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value is not None and (not math.isfinite(value) or value <= 0):
                raise BadInput(f"limit {name} must be a positive number (or unset)")

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None}, sort_keys=True)

    @staticmethod
    def from_json(raw: str | None) -> Limits:
        return Limits.of(json.loads(raw)) if raw else Limits()

    @staticmethod
    def of(values: dict[str, Any]) -> Limits:
        """From a mapping (settings, JSON): counts as integers, the budget in dollars."""
        unknown = set(values) - {"rpm", "tpm", "concurrent", "budget_usd"}
        if unknown:
            raise BadInput(f"unknown limits {sorted(unknown)}; use rpm, tpm, concurrent, budget_usd")
        counts = {k: int(v) for k, v in values.items() if k != "budget_usd" and v is not None}
        budget = values.get("budget_usd")
        return Limits(**counts, budget_usd=None if budget is None else float(budget))

    def policies(self, scope: str) -> list[str]:
        """This scope's entries of the `RateLimit-Policy` header."""
        out = []
        if self.rpm:
            out.append(f'"{scope}-rpm";q={self.rpm};w=60')
        if self.tpm:
            out.append(f'"{scope}-tpm";q={self.tpm};w=60;qu="tokens"')
        if self.concurrent:
            out.append(f'"{scope}-concurrent";q={self.concurrent}')
        return out


@dataclass(frozen=True, kw_only=True)
class Scope:
    name: str  # "key" or "tenant": what a refusal names
    id: str  # the key id or the tenant
    tenant: str  # whose: its counters carry the tenant's hash tag (`stores.keys.limit_key`)
    limits: Limits
    unit: str = "tokens"  # what `tpm` counts: model tokens, or a route family's own (KB of uploads)


@dataclass(kw_only=True)
class Ticket:
    """An admitted request: what it reserved, to settle once it is answered."""

    request_id: str
    scopes: list[Scope]
    reserved_tokens: int
    headers: dict[str, str] = field(default_factory=dict)


_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, tokens, ttl, burst_s = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 4
local sets, adds = {}, {}
local remaining, reset = -1, 0
for i = 0, n - 1 do
  local k_rpm, k_tpm, k_in, k_spent = KEYS[i*4+1], KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local b = 4 + i * 4
  local rpm, tpm, conc, budget = tonumber(ARGV[b+1]), tonumber(ARGV[b+2]), tonumber(ARGV[b+3]), tonumber(ARGV[b+4])
  if rpm > 0 then
    local T = 60000 / rpm
    local tau = math.max(0, burst_s * 1000 - T)
    local tat = math.max(tonumber(redis.call('GET', k_rpm) or now), now)
    if tat - now > tau then return {0, 'rpm', math.ceil(tat - now - tau), i} end
    sets[#sets+1] = {k_rpm, tat + T}
    local left = math.floor((tau - (tat + T - now)) / T) + 1
    if remaining < 0 or left < remaining then remaining = math.max(0, left); reset = math.ceil(tat + T - now) end
  end
  if tpm > 0 and tokens > 0 then
    if tokens > tpm then return {0, 'tpm_exceeds_limit', 0, i} end
    local T = 60000 / tpm
    local tat = math.max(tonumber(redis.call('GET', k_tpm) or now), now)
    local over = tat + T * tokens - now - 60000
    if over > 0 then return {0, 'tpm', math.ceil(over), i} end
    sets[#sets+1] = {k_tpm, tat + T * tokens}
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', k_in, '-inf', now)
    if redis.call('ZCARD', k_in) >= conc then return {0, 'concurrent', 1000, i} end
    adds[#adds+1] = k_in
  end
  if budget > 0 and tonumber(redis.call('GET', k_spent) or 0) >= budget then return {0, 'budget', -1, i} end
end
for _, s in ipairs(sets) do
  redis.call('SET', s[1], tostring(s[2]), 'PX', math.ceil(s[2] - now) + 60000)
end
for _, k in ipairs(adds) do
  redis.call('ZADD', k, now + ttl, rid)
  redis.call('PEXPIRE', k, ttl)
end
return {1, remaining, reset}
"""

_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rid, delta, cost, month_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local n = #KEYS / 4
for i = 0, n - 1 do
  local k_tpm, k_in, k_spent = KEYS[i*4+2], KEYS[i*4+3], KEYS[i*4+4]
  local tpm = tonumber(ARGV[4 + i + 1])
  if tpm > 0 and delta ~= 0 then
    local tat = tonumber(redis.call('GET', k_tpm) or now)
    local moved = math.max(tat + (60000 / tpm) * delta, now)
    redis.call('SET', k_tpm, tostring(moved), 'PX', math.ceil(moved - now) + 60000)
  end
  redis.call('ZREM', k_in, rid)
  if cost > 0 then
    redis.call('INCRBY', k_spent, cost)
    redis.call('PEXPIRE', k_spent, month_ms)
  end
end
return 1
"""


def _month(now: dt.datetime) -> str:
    return now.strftime("%Y%m")


def _seconds_to_next_month(now: dt.datetime) -> float:
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return (nxt - now).total_seconds()


class Limiter:
    def __init__(
        self, client: redis.Redis, fail_open: bool = False, default_tenant_limits: Limits | None = None
    ) -> None:
        self.r = client
        self.fail_open = fail_open
        self.default_tenant_limits = default_tenant_limits or Limits()
        self._tenant_limits: dict[str, tuple[float, Limits]] = {}  # tenant -> (read at, limits)
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)

    # -- configuration ----------------------------------------------------------------------
    def tenant_limits(self, tenant: str) -> Limits:
        """The tenant's own limits, or the deployment's default for a tenant with none set."""
        own = Limits.from_json(self.r.get(tenant_limits_key(tenant)))  # type: ignore[arg-type]
        return own if own != Limits() else self.default_tenant_limits

    def set_tenant_limits(self, tenant: str, limits: Limits) -> None:
        self.r.set(tenant_limits_key(tenant), limits.to_json())
        self._tenant_limits.pop(tenant, None)

    def scopes(self, key_id: str, key_limits: Limits, tenant: str) -> list[Scope]:
        return [
            Scope(name="key", id=key_id, tenant=tenant, limits=key_limits),
            Scope(name="tenant", id=tenant, tenant=tenant, limits=self.tenant_limits(tenant)),
        ]

    def route_scopes(
        self, key_id: str, tenant: str, family: str, key_limits: Limits, tenant_limits: Limits
    ) -> list[Scope]:
        """The scopes of a route family (uploads, feedback, admin): counted apart from queries."""
        return [
            Scope(
                name="key",
                id=f"{key_id}/{family}",
                tenant=tenant,
                limits=key_limits,
                unit=ROUTE_UNITS.get(family, "tokens"),
            ),
            Scope(
                name="tenant",
                id=f"{tenant}/{family}",
                tenant=tenant,
                limits=tenant_limits,
                unit=ROUTE_UNITS.get(family, "tokens"),
            ),
        ]

    # -- per request -------------------------------------------------------------------------
    def admit(self, request_id: str, scopes: Sequence[Scope], tokens: int) -> Ticket:
        """Admit a request that may spend up to `tokens` model tokens, or raise RateLimited (429)."""
        limited = [s for s in scopes if s.limits != Limits()]
        ticket = Ticket(request_id=request_id, scopes=limited, reserved_tokens=tokens)
        policies = [p for s in limited for p in s.limits.policies(s.name)]
        if policies:
            ticket.headers["RateLimit-Policy"] = ", ".join(policies)
        if not limited:
            return ticket
        now = dt.datetime.now(dt.UTC)
        args: list[Any] = [request_id, tokens, INFLIGHT_TTL_S * 1000, BURST_S]
        for s in limited:
            lim = s.limits
            budget = round((lim.budget_usd or 0) * MICRO)
            args += [lim.rpm or 0, lim.tpm or 0, lim.concurrent or 0, budget]
        try:
            reply: list[Any] = self._admit(keys=self._keys(limited, now), args=args)
        except redis.exceptions.RedisError as exc:
            if self.fail_open:
                return Ticket(request_id=request_id, scopes=[], reserved_tokens=0)
            raise LimiterUnavailable(
                f"the rate limiter cannot reach Redis ({type(exc).__name__}); retry shortly"
            ) from exc
        if int(reply[0]) == 1:
            remaining, reset_ms = int(reply[1]), int(reply[2])
            if remaining >= 0:
                ticket.headers["RateLimit"] = f'"rpm";r={remaining};t={math.ceil(reset_ms / 1000)}'
            return ticket
        policy, wait_ms, scope = str(reply[1]), int(reply[2]), limited[int(reply[3])]
        raise self._refusal(policy, wait_ms, scope, tokens, now, ticket.headers)

    def settle(self, ticket: Ticket, tokens_used: int, cost_usd: float) -> None:
        """The request is answered: give back unused tokens, free its concurrency slot, charge its cost."""
        if not ticket.scopes:
            return
        now = dt.datetime.now(dt.UTC)
        month_ms = round((_seconds_to_next_month(now) + 7 * 86400) * 1000)  # kept a week past the month
        args: list[Any] = [ticket.request_id, tokens_used - ticket.reserved_tokens, round(cost_usd * MICRO), month_ms]
        args += [s.limits.tpm or 0 for s in ticket.scopes]
        # On a Redis error the reservation expires on its own; the next admission fails closed.
        with contextlib.suppress(redis.exceptions.RedisError):
            self._settle(keys=self._keys(ticket.scopes, now), args=args)

    @staticmethod
    def _keys(scopes: Sequence[Scope], now: dt.datetime) -> list[str]:
        month = _month(now)
        return [
            k
            for s in scopes
            for k in (
                limit_key(s.tenant, s.name, s.id, "rpm"),
                limit_key(s.tenant, s.name, s.id, "tpm"),
                limit_key(s.tenant, s.name, s.id, "inflight"),
                limit_key(s.tenant, s.name, s.id, f"spent:{month}"),
            )
        ]

    @staticmethod
    def _refusal(
        policy: str, wait_ms: int, scope: Scope, tokens: int, now: dt.datetime, headers: dict[str, str]
    ) -> KeelError:
        who = f"the {scope.name}" if scope.name == "key" else f"tenant {scope.id.split('/')[0]!r}"
        if policy == "tpm_exceeds_limit" and scope.unit != "tokens":
            return ExceedsLimit(
                f"the request is {tokens:,} {scope.unit}, more than {who}'s limit of {scope.limits.tpm:,} a minute"
            )
        if policy == "tpm_exceeds_limit":
            return ExceedsLimit(
                f"the request may use {tokens:,} tokens, more than {who}'s limit of {scope.limits.tpm:,} a minute; "
                "ask for fewer output tokens"
            )
        if policy == "budget":
            return RateLimited(
                f"{who} has spent its monthly budget of ${scope.limits.budget_usd:,.2f}",
                retry_after_s=_seconds_to_next_month(now),
                policy=f"{scope.name}-budget",
                headers=headers,
            )
        what = {"rpm": "requests a minute", "tpm": f"{scope.unit} a minute", "concurrent": "requests at once"}[policy]
        return RateLimited(
            f"{who} is over its limit of {getattr(scope.limits, policy):,} {what}",
            retry_after_s=max(0.001, wait_ms / 1000),
            policy=f"{scope.name}-{policy}",
            headers=headers,
        )
