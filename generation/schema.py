"""A caller's JSON Schema, held to what a schema for an answer needs and nothing an attacker can use.

The schema comes with the question, from whoever holds a `query` key, and it is evaluated by the
worker. So:
- it is bounded: its JSON at most `MAX_CHARS` characters and `MAX_DEPTH` levels deep, so
  checking it and validating an answer against it take bounded time;
- it refers only to itself: every `$ref` is a fragment of this schema (`#/$defs/...`), and the
  validator's registry has nothing to retrieve, so no `$ref` or `$id` ever makes the worker fetch
  a URL or open a file (jsonschema's default resolver follows both);
- its regular expressions run in linear time: `pattern` and `patternProperties` are compiled by
  RE2, a schema whose expressions RE2 cannot compile is refused, and validation matches them
  with RE2, never with Python's backtracking engine;
- `unevaluatedProperties` beside `patternProperties` is refused (jsonschema evaluates that pair
  with Python's engine, out of this module's reach).
Every refusal is a `SchemaRefused` with the reason, which the edge turns into a 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry
from referencing.exceptions import Unresolvable

MAX_CHARS = 8_000
MAX_DEPTH = 16
_REF_KEYS = ("$ref", "$dynamicRef", "$recursiveRef")


class SchemaRefused(ValueError):
    pass


def check(schema: Any) -> None:
    """Raise SchemaRefused unless `schema` is a valid, bounded, self-contained JSON Schema."""
    if not isinstance(schema, dict | bool):
        raise SchemaRefused("a JSON Schema is an object")
    size = len(json.dumps(schema, separators=(",", ":")))
    if size > MAX_CHARS:
        raise SchemaRefused(f"the schema is {size:,} characters of JSON; the limit is {MAX_CHARS:,}")
    if _depth(schema) > MAX_DEPTH:
        raise SchemaRefused(f"the schema nests deeper than {MAX_DEPTH} levels")
    for key, value in _keywords(schema):
        if key in _REF_KEYS and (not isinstance(value, str) or not value.startswith("#")):
            raise SchemaRefused(f"{key} {value!r} points outside the schema; only local references (#/...) are allowed")
        if key == "pattern" and isinstance(value, str):
            _linear(value)
        if key == "patternProperties" and isinstance(value, dict):
            for expression in value:
                _linear(expression)
        if key == "unevaluatedProperties" and _has_pattern_properties(schema):
            raise SchemaRefused("unevaluatedProperties cannot be combined with patternProperties here")
    try:
        Draft202012Validator.check_schema(schema)
    except Exception as exc:  # SchemaError, or a pattern jsonschema's own check rejects
        raise SchemaRefused(f"not a valid JSON Schema: {getattr(exc, 'message', exc)}") from None


def validate(value: Any, schema: dict[str, Any]) -> str | None:
    """Why `value` does not match `schema` (already `check`ed), or None."""
    try:
        error = next(_validator(json.dumps(schema, sort_keys=True)).iter_errors(value), None)
    except Unresolvable as exc:
        return f"the schema's reference {exc} does not resolve"
    return None if error is None else error.message


def strings(schema: Any) -> list[str]:
    """Every string in the schema (titles, descriptions, enums, defaults): text the model reads,
    screened like the question."""
    if isinstance(schema, str):
        return [schema]
    if isinstance(schema, dict):
        return [s for k, v in schema.items() for s in (*strings(k), *strings(v))]
    if isinstance(schema, list):
        return [s for v in schema for s in strings(v)]
    return []


def _keywords(schema: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            yield key, value
            yield from _keywords(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _keywords(value)


def _depth(schema: Any) -> int:
    # Iterative: a deep schema must not exhaust the recursion limit while it is being measured.
    deepest, stack = 0, [(schema, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def _has_pattern_properties(schema: Any) -> bool:
    return any(key == "patternProperties" for key, _ in _keywords(schema))


def _options() -> re2.Options:
    options = re2.Options()
    options.max_mem = 1 << 20  # a schema's expression is small; a huge automaton is refused, not built
    return options


@lru_cache(maxsize=256)
def _linear(expression: str) -> Any:
    try:
        return re2.compile(expression, _options())
    except re2.error as exc:
        raise SchemaRefused(
            f"the pattern {expression[:80]!r} cannot be evaluated in linear time ({exc}); "
            "use a regular expression without backreferences or lookaround"
        ) from None


def _pattern(validator: Any, expression: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and _linear(expression).search(instance) is None:
        yield ValidationError(f"{instance[:80]!r} does not match {expression[:80]!r}")


def _matched(schema: dict[str, Any], name: str) -> bool:
    return any(_linear(expression).search(name) is not None for expression in schema.get("patternProperties", {}))


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for expression, subschema in patterns.items():
        for name, value in instance.items():
            if _linear(expression).search(name) is not None:
                yield from validator.descend(value, subschema, path=name, schema_path=expression)


def _additional_properties(validator: Any, additional: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = [n for n in instance if n not in schema.get("properties", {}) and not _matched(schema, n)]
    if validator.is_type(additional, "object"):
        for name in extras:
            yield from validator.descend(instance[name], additional, path=name)
    elif additional is False and extras:
        yield ValidationError(f"additional properties are not allowed ({', '.join(map(repr, extras[:5]))})")


_Linear = validators.extend(
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties},
)


@lru_cache(maxsize=64)
def _validator(schema_json: str) -> Any:
    # An empty registry retrieves nothing: a reference outside the schema cannot be resolved.
    return _Linear(json.loads(schema_json), registry=Registry())
