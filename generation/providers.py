"""What a generation provider is, and how it fails.

A provider turns a rendered prompt into text, optionally calling `on_token` as text arrives
(streaming). It never retries: retries, fallbacks and the breaker belong to the chain
(`generation.chain`) and to Temporal. Every failure is a `ProviderError` with a short reason
(`timeout`, `http_500`, `rate_limited`, `malformed_response`, `truncated_stream`, ...) that ends up
on the answer's attempt list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from contracts.query import ContextPassage

OnToken = Callable[[str], None]


class ProviderError(Exception):
    def __init__(self, reason: str, detail: str = "", retry_after_s: float | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    question: str
    passages: list[ContextPassage]
    max_output_tokens: int
    timeout_s: float  # the whole attempt, first token to last
    json_schema: dict[str, object] | None = None
    first_token_timeout_s: float | None = None  # streaming: the wait for the first byte of the answer
    system: str = ""  # the system message: the rules, apart from the sources and the question
    prompt_id: str = ""  # the prompt `prompt` and `system` were rendered from
    # A retry of an answer with unsupported claims: the strict prompt it carries is used as it is
    # (a provider's own prompt, `ProviderConfig.prompt`, is not put in its place).
    strict: bool = False


@dataclass(frozen=True)
class Generation:
    text: str
    tokens_in: int
    tokens_out: int
    model: str
    prompt_id: str = ""  # the prompt the provider sent, when it chose its own (ProviderConfig.prompt)
    prompt_hash: str = ""


class Provider(Protocol):
    name: str
    model: str
    price_in_per_1k: float
    price_out_per_1k: float

    def generate(self, req: GenerationRequest, on_token: OnToken | None = None) -> Generation: ...
