"""Checks on text that crosses the edge: it must be valid Unicode before anything stores or encodes it.

A lone surrogate (`"\\ud800"`, or bytes that were not UTF-8 in a command line) passes JSON parsing
and Python strings but cannot be encoded: caught here, it is a 400 `invalid_text`, not a 500 deep
in a payload converter.
"""

from __future__ import annotations

from keel.errors import InvalidText


def check_text(value: str, what: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidText(f"{what} is not valid Unicode text (character {exc.start} is a lone surrogate)") from None
    if "\x00" in value:
        raise InvalidText(f"{what} contains a NUL character")
    return value
