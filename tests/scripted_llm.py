"""A scripted OpenAI-compatible chat server on loopback: the one test double (a hosted LLM).

Each request takes the next behaviour from the script (the last one repeats): `ok`, `500`,
`429` (with Retry-After), `timeout` (sleeps past the client's timeout), `malformed` (a 200 that is
not the protocol's JSON), `truncated` (a stream cut off before it finishes). A citation check
(`generation.verify`'s yes/no question) is answered with `verdict` instead, outside the script.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from generation.verify import SYSTEM as VERIFY_SYSTEM

ANSWER = "Run keel ingest again on the same paths [1]."


class ScriptedLLM:
    def __init__(self, script: list[str], answer: str = ANSWER, sleep_s: float = 3.0) -> None:
        self.script = list(script)
        self.answer = answer
        self.sleep_s = sleep_s
        self.verdict = "yes"
        self.verifications: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def next(self) -> str:
        with self._lock:
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["messages"][0]["content"] == VERIFY_SYSTEM:
                    llm.verifications.append(body)
                    said: dict[str, Any] = {"choices": [{"message": {"content": llm.verdict}}], "usage": {}}
                    return self._send(200, json.dumps(said).encode())
                llm.requests.append(body)
                behaviour = llm.next()
                if behaviour == "500":
                    return self._send(500, b'{"error": "boom"}')
                if behaviour == "429":
                    return self._send(429, b'{"error": "slow down"}', {"Retry-After": "0.1"})
                if behaviour == "timeout":
                    time.sleep(llm.sleep_s)
                    return self._send(504, b"{}")
                if behaviour == "malformed":
                    return self._send(200, b'{"choices": "not a list"}')
                words = llm.answer.split(" ")
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    cut = len(words) // 2 if behaviour == "truncated" else len(words)
                    for i, w in enumerate(words[:cut]):
                        delta = {"choices": [{"delta": {"content": w if i == 0 else " " + w}}]}
                        self.wfile.write(f"data: {json.dumps(delta)}\n\n".encode())
                        self.wfile.flush()
                    if behaviour != "truncated":
                        self.wfile.write(b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n')
                        self.wfile.write(b"data: [DONE]\n\n")
                    return None
                reply = {
                    "choices": [{"message": {"role": "assistant", "content": llm.answer}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": len(words)},
                }
                return self._send(200, json.dumps(reply).encode())

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        return Handler


@contextmanager
def scripted_llm(script: list[str], **kwargs: Any) -> Iterator[ScriptedLLM]:
    llm = ScriptedLLM(script, **kwargs)
    thread = threading.Thread(target=llm.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield llm
    finally:
        llm.server.shutdown()
        llm.server.server_close()
