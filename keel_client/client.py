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
        self,
        url: str,
        api_key: str,
        *,
        groups: list[str] | None = None,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """`groups` narrows the key's access groups for every call (what is read, and what an
        upload is readable by); a key's groups are never widened."""
        headers = {"Authorization": f"Bearer {api_key}"}
        if groups:
            headers["X-Keel-Groups"] = ",".join(groups)
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout, transport=transport)

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

    def chat(
        self, messages: list[dict[str, Any]], model: str = "keel", conversation_id: str | None = None
    ) -> dict[str, Any]:
        """An OpenAI-shaped chat completion over the knowledge base (`POST /v1/chat/completions`):
        the earlier messages make a follow-up standalone, or `conversation_id` continues a durable one."""
        body: dict[str, Any] = {"model": model, "messages": messages}
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        return _json(self.http.post("/v1/chat/completions", json=body))

    # -- conversations --------------------------------------------------------------------------
    def conversation(self, title: str = "") -> str:
        """A new durable conversation of this key; returns its id."""
        return str(_json(self.http.post("/v1/conversations", json={"title": title}))["id"])

    def turn(self, conversation_id: str, question: str, **options: Any) -> dict[str, Any]:
        """The conversation's next question, answered; `rewrite` says how a follow-up was read."""
        return _json(
            self.http.post(f"/v1/conversations/{conversation_id}/turns", json={"question": question, **options})
        )

    def conversations(self) -> list[str]:
        return list(_json(self.http.get("/v1/conversations"))["data"])

    def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        return list(_json(self.http.get(f"/v1/conversations/{conversation_id}"))["turns"])

    def end(self, conversation_id: str) -> None:
        """Delete the conversation and its history."""
        resp = self.http.delete(f"/v1/conversations/{conversation_id}")
        if resp.status_code != 204:
            _json(resp)

    # -- documents ------------------------------------------------------------------------------
    def ingest(self, path: str | Path, source: str | None = None, groups: str = "") -> dict[str, Any]:
        """Upload one file; returns the job (`job_id`, `status_url`). `source` names the document
        (default: the file's name); the same source again replaces it. `groups` (comma-separated,
        of the key's) are who may read it; by default all of the key's."""
        path = Path(path)
        data = {"source": source} if source else {}
        headers = {"X-Keel-Groups": groups} if groups else {}
        with path.open("rb") as f:
            return _json(self.http.post("/v1/documents", files={"file": (path.name, f)}, data=data, headers=headers))

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

    def document(self, doc_id: str) -> dict[str, Any]:
        """A document as the key may read it: title, source, version and its chunks' text."""
        return _json(self.http.get(f"/v1/documents/{doc_id}"))

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
