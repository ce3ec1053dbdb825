"""The client: one method per thing a caller does, each one HTTP call (or a poll of one)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class KeelAPIError(Exception):
    """An error answer: its HTTP status, Keel's code and message, the request id, and for a 429 or
    503 how long to wait before trying again."""

    def __init__(self, status: int, code: str, message: str, request_id: str, retry_after_s: float | None) -> None:
        super().__init__(f"{status} {code}: {message} (request {request_id})")
        self.status, self.code, self.message = status, code, message
        self.request_id, self.retry_after_s = request_id, retry_after_s


class Keel:
    def __init__(
        self, url: str, api_key: str, *, timeout: float = 60.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Keel:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- asking ---------------------------------------------------------------------------------
    def query(self, question: str, **options: Any) -> dict[str, Any]:
        """The answer with its citations, degradations and timings (`POST /v1/query`); `options`
        are the body's other fields (mode, rerank, filters, json_schema, max_output_tokens, route, cache)."""
        return _json(self.http.post("/v1/query", json={"question": question, **options}))

    def stream(self, question: str, **options: Any) -> Iterator[tuple[str, Any]]:
        """(event, data) as they come: `sources`, `token`s, `reset`s, then `done` with the whole
        answer. An `error` event raises."""
        with self.http.stream("POST", "/v1/query/stream", json={"question": question, **options}) as resp:
            if resp.status_code != 200:
                resp.read()
                _json(resp)
            event = ""
            for line in resp.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event == "error":
                        raise KeelAPIError(
                            200, data.get("code", ""), data.get("message", ""), data.get("request_id", ""), None
                        )
                    yield event, data

    def chat(self, messages: list[dict[str, Any]], model: str = "keel") -> dict[str, Any]:
        """An OpenAI-shaped chat completion over the knowledge base (`POST /v1/chat/completions`)."""
        return _json(self.http.post("/v1/chat/completions", json={"model": model, "messages": messages}))

    # -- documents ------------------------------------------------------------------------------
    def ingest(self, path: str | Path, source: str | None = None) -> dict[str, Any]:
        """Upload one file; returns the job (`job_id`, `status_url`). `source` names the document
        (default: the file's name); the same source again replaces it."""
        path = Path(path)
        data = {"source": source} if source else {}
        with path.open("rb") as f:
            return _json(self.http.post("/v1/documents", files={"file": (path.name, f)}, data=data))

    def job(self, job_id: str) -> dict[str, Any]:
        return _json(self.http.get(f"/v1/jobs/{job_id}"))

    def wait(self, job_id: str, every_s: float = 0.5, timeout_s: float = 600.0) -> dict[str, Any]:
        """The job once it has finished (completed or failed); TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.job(job_id)
            if state["status"] not in ("running", "pending"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {state['status']} after {timeout_s:.0f} s")
            time.sleep(every_s)

    def delete(self, doc_id: str) -> dict[str, Any]:
        """Remove a document for good; `status` says `deleted` or `absent`."""
        return _json(self.http.delete(f"/v1/documents/{doc_id}"))


def _json(resp: httpx.Response) -> dict[str, Any]:
    if resp.is_success:
        body: dict[str, Any] = resp.json()
        return body
    try:
        err = resp.json().get("error", {})
    except ValueError:
        err = {"code": "http_error", "message": resp.text[:200]}
    retry = resp.headers.get("retry-after")
    raise KeelAPIError(
        resp.status_code,
        str(err.get("code", "")),
        str(err.get("message", "")),
        str(err.get("request_id", resp.headers.get("x-request-id", ""))),
        float(retry) if retry else None,
    )
