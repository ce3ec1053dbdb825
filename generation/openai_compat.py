"""An OpenAI-compatible chat endpoint: vLLM, TGI, Ollama, llama.cpp's server, OpenAI.

The httpx client does not retry (retries belong to the chain and Temporal). Streaming reads the
server-sent `data:` lines and passes each delta to `on_token`; a stream that ends without
`[DONE]` or a finish reason is `truncated_stream`, and the partial text is not used.
`max_tokens` is always sent, so the output limit is enforced by the server as well as counted here.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace
from typing import Any

import httpx

from generation import prompts
from generation.providers import Generation, GenerationRequest, OnToken, ProviderError


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    base_url: str  # e.g. http://127.0.0.1:11434/v1
    model: str
    api_key_env: str | None = None  # the key is read from this environment variable, never stored
    price_in_per_1k: float = 0.0
    price_out_per_1k: float = 0.0
    stream: bool = True
    # Per attempt (the chain's link policy, generation.chain.LinkPolicy): the whole call, the wait
    # for the first token, and how many calls may be in flight from this process at once.
    attempt_timeout_s: float | None = None
    first_token_timeout_s: float | None = None
    max_in_flight: int | None = None
    # The prompt version this model is asked with (text answers; "" the release's): small
    # instruct models follow `answer-small.v1` better. Its stop sequences end an answer early.
    prompt: str = ""
    stop: tuple[str, ...] = ()


class OpenAICompatProvider:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self.name = config.name
        self.model = config.model
        self.price_in_per_1k = config.price_in_per_1k
        self.price_out_per_1k = config.price_out_per_1k
        key = os.environ.get(config.api_key_env, "") if config.api_key_env else ""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers)

    def close(self) -> None:
        self._client.close()

    def _generate(self, req: GenerationRequest, on_token: OnToken | None = None) -> Generation:
        own = self._own_prompt(req)
        system, user = (own.system, own.text) if own is not None else (req.system, req.prompt)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [
                *([{"role": "system", "content": system}] if system else []),
                {"role": "user", "content": user},
            ],
            "max_tokens": req.max_output_tokens,
            "temperature": 0,
        }
        if self.config.stop:
            body["stop"] = list(self.config.stop)
        if req.json_schema is not None:
            body["response_format"] = {"type": "json_object"}
        stream = self.config.stream and on_token is not None
        body["stream"] = stream
        timeout = httpx.Timeout(req.timeout_s, connect=min(2.0, req.timeout_s))
        try:
            if stream:
                assert on_token is not None
                first = min(req.first_token_timeout_s or req.timeout_s, req.timeout_s)
                gaps = httpx.Timeout(first, connect=min(2.0, first))  # httpx times each read, not the call
                return self._stream(body, gaps, on_token, time.monotonic() + req.timeout_s)
            resp = self._client.post("/chat/completions", json=body, timeout=timeout)
            _raise_for_status(resp)
            return self._parse(resp)
        except httpx.TimeoutException as exc:
            raise ProviderError("timeout", f"no answer within {req.timeout_s:.1f}s") from exc
        except httpx.HTTPError as exc:
            raise ProviderError("connection_error", str(exc)[:200]) from exc

    def generate(self, req: GenerationRequest, on_token: OnToken | None = None) -> Generation:
        gen = self._generate(req, on_token)
        if not gen.text.strip():  # nothing said is no answer: the chain moves on to the next link
            raise ProviderError("empty_answer", f"{gen.tokens_out} tokens, no text")
        own = self._own_prompt(req)
        return gen if own is None else replace(gen, prompt_id=own.prompt_id, prompt_hash=own.hash)

    def _own_prompt(self, req: GenerationRequest) -> prompts.Rendered | None:
        """This model's own prompt for a text answer, unless the request is a strict retry."""
        if not self.config.prompt or req.strict or req.json_schema is not None:
            return None
        return prompts.render(req.question, req.passages, None, self.config.prompt)

    def _parse(self, resp: httpx.Response) -> Generation:
        try:
            data = resp.json()
            text = data["choices"][0]["message"]["content"]
            usage = data.get("usage") or {}
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ProviderError("malformed_response", resp.text[:200]) from exc
        if not isinstance(text, str):
            raise ProviderError("malformed_response", "message content is not text")
        return Generation(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), self.model)

    def _stream(self, body: dict[str, Any], timeout: httpx.Timeout, on_token: OnToken, deadline: float) -> Generation:
        parts: list[str] = []
        finished = False
        usage: dict[str, Any] = {}
        with self._client.stream("POST", "/chat/completions", json=body, timeout=timeout) as resp:
            if resp.status_code >= 400:
                resp.read()
                _raise_for_status(resp)
            for line in resp.iter_lines():
                if time.monotonic() > deadline:  # a stream that trickles on past the attempt's deadline
                    raise ProviderError("timeout", f"the stream ran past its deadline after {len(parts)} deltas")
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    finished = True
                    break
                try:
                    event = json.loads(payload)
                    choice = event["choices"][0] if event.get("choices") else {}
                except (ValueError, KeyError, IndexError, TypeError) as exc:
                    raise ProviderError("malformed_response", payload[:200]) from exc
                usage = event.get("usage") or usage
                delta = (choice.get("delta") or {}).get("content") or ""
                if delta:
                    parts.append(delta)
                    on_token(delta)
                if choice.get("finish_reason"):
                    finished = True
        if not finished:
            raise ProviderError("truncated_stream", f"the stream ended after {len(parts)} deltas")
        text = "".join(parts)
        return Generation(text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)), self.model)


def _raise_for_status(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    retry_after = None
    if resp.status_code == 429:
        try:
            retry_after = float(resp.headers.get("retry-after", ""))
        except ValueError:
            retry_after = None
        raise ProviderError("rate_limited", resp.text[:200], retry_after)
    raise ProviderError(f"http_{resp.status_code}", resp.text[:200])
