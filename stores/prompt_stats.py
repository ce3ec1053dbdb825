"""Per prompt version: JSON answers, parse errors and repairs (parse_error_rate = errors / answers)."""

from __future__ import annotations

import redis

from stores.keys import prompt_stats_key


def count_json_answer(r: redis.Redis, prompt_id: str, *, error: bool, repaired: bool) -> None:
    key = prompt_stats_key(prompt_id)
    pipe = r.pipeline()
    pipe.hincrby(key, "json_answers", 1)
    if error:
        pipe.hincrby(key, "json_parse_errors", 1)
    if repaired:
        pipe.hincrby(key, "json_repaired", 1)
    pipe.execute()
