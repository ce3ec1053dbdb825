"""Prompt releases as operators run them: promote a version (to production, or as a canary for a
share of callers), roll a family back (the kill switch), read where each family stands. Every
change is audited. The registry itself is `stores.prompt_releases`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import redis

from gateway.audit import Audit
from generation import prompts
from keel.errors import BadInput
from stores import prompt_releases
from stores.prompt_releases import GLOBAL, Assignment, Release

FAMILIES = {"answer": prompts.TEXT_PROMPT, "answer-json": prompts.JSON_PROMPT}  # family -> shipped default


def family_of(version: str) -> str:
    family = version.rpartition(".")[0]
    if family not in FAMILIES:
        raise BadInput(f"{version!r} is not a version of a prompt family ({', '.join(FAMILIES)})")
    try:
        prompts.load(version)
    except FileNotFoundError as exc:
        raise BadInput(f"no prompt {version!r}: there is no prompts/{version}.txt") from exc
    except (OSError, ValueError) as exc:
        raise BadInput(f"the prompt {version!r} cannot be used: {exc}") from exc
    return family


def assign(r: redis.Redis, tenant: str, key_id: str, json_answer: bool) -> Assignment:
    family = "answer-json" if json_answer else "answer"
    return prompt_releases.assign(r, tenant, key_id, family, FAMILIES[family])


def promote(
    r: redis.Redis, tenant: str | None, version: str, canary_share: float | None, actor: str = "cli"
) -> Release:
    if canary_share is not None and not 0.0 < canary_share < 1.0:
        raise BadInput("a canary share is between 0 and 1 (exclusive): 0.05 sends 5% of callers to it")
    family = family_of(version)
    release = prompt_releases.promote(r, tenant or GLOBAL, family, version, canary_share)
    label = "canary" if canary_share is not None else "production"
    Audit(r).record(tenant, "prompt_promoted", key_id=actor, version=version, label=label, share=canary_share)
    return release


def rollback(r: redis.Redis, tenant: str | None, family: str, actor: str = "cli") -> Release:
    if family not in FAMILIES:
        raise BadInput(f"no prompt family {family!r} ({', '.join(FAMILIES)})")
    release = prompt_releases.rollback(r, tenant or GLOBAL, family)
    Audit(r).record(tenant, "prompt_rolled_back", key_id=actor, family=family, now=release.production or "default")
    return release


def status(r: redis.Redis, tenant: str | None) -> dict[str, Any]:
    """Per family: the global and the tenant's labels, and the shipped default."""
    out: dict[str, Any] = {}
    for family, default in FAMILIES.items():
        scopes = {"global": prompt_releases.releases(r, GLOBAL, fresh=True).get(family, Release())}
        if tenant:
            scopes["tenant"] = prompt_releases.releases(r, tenant, fresh=True).get(family, Release())
        out[family] = {"default": default, **{k: asdict(v) for k, v in scopes.items()}}
    return out
