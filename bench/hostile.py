"""`make bench-hostile`: attacks an ordinary key can make, through the real API, each with its
outcome and how long `/healthz` took while it ran.

A private stack (Temporal dev server, Redis, the server process as `make run` starts it) holds
the sample corpus. Each attack runs under a time limit (`--limit-s`) while a prober asks
`/healthz` every 50 ms; a request that freezes the server shows as a `/healthz` that took as long.
A listener on loopback stands where a schema's `$ref` points: it counts the requests it gets.

Prints one row per attack (status, code, seconds, the slowest `/healthz`, what the listener
saw) and, last, `attacks=`, `stalled=` (attacks whose `/healthz` took over a second),
`listener_requests=` and `healthz_max_ms=`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.query import ingest, private_stack, start_api
from gateway.keys import INGEST, QUERY, KeyStore
from stores import redis as redis_store

SAMPLES = Path(__file__).resolve().parent.parent / "samples" / "corpus"
TENANT = "bench-hostile"
QUESTION = "How do I retry failed files?"


@dataclass
class Outcome:
    name: str
    status: int | str = "-"
    code: str = ""
    seconds: float = 0.0
    healthz_ms: list[float] = field(default_factory=list)


class Listener:
    """Where an attacker's `$ref` points: counts the requests that reach it."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        seen = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"type": "string"}')

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def probe(api: str, stop: threading.Event, out: list[float]) -> None:
    with httpx.Client(base_url=api, timeout=300) as http:
        while not stop.is_set():
            started = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):  # a refused probe still took its time
                http.get("/healthz")
            out.append((time.perf_counter() - started) * 1000)
            time.sleep(0.05)


def run(api: str, name: str, attack: Callable[[httpx.Client], httpx.Response], limit_s: float) -> Outcome:
    outcome = Outcome(name=name)
    stop = threading.Event()
    prober = threading.Thread(target=probe, args=(api, stop, outcome.healthz_ms), daemon=True)
    prober.start()
    started = time.perf_counter()
    try:
        with httpx.Client(base_url=api, timeout=limit_s) as http:
            resp = attack(http)
        outcome.status = resp.status_code
        if resp.headers.get("content-type", "").startswith("application/json"):
            body = resp.json()
            outcome.code = (body.get("error") or {}).get("code", "") if isinstance(body, dict) else ""
    except httpx.TimeoutException:
        outcome.status = f">{limit_s:.0f} s"
    outcome.seconds = time.perf_counter() - started
    stop.set()
    prober.join(timeout=limit_s)
    return outcome


def docx_bomb(inflated: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        with z.open("word/document.xml", "w", force_zip64=True) as part:
            block = b"\0" * (1 << 20)
            for _ in range(inflated // len(block)):
                part.write(block)
    return buf.getvalue()


def upload_and_wait(http: httpx.Client, headers: dict[str, str], data: bytes, name: str) -> httpx.Response:
    resp = http.post("/v1/documents", files={"file": (name, data)}, headers=headers)
    if resp.status_code != 202:
        return resp
    for _ in range(600):
        job = http.get(resp.json()["status_url"], headers=headers)
        if job.status_code == 200 and job.json()["status"] == "completed":
            (outcome,) = job.json()["files"]
            return httpx.Response(
                200 if outcome["status"] == "ingested" else 422,
                json={"error": {"code": outcome.get("code") or outcome["status"]}},
            )
        time.sleep(0.2)
    return resp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit-s", type=float, default=120.0, help="each attack's time limit")
    args = parser.parse_args()
    listener = Listener()
    with private_stack("hostile") as stack:
        settings = stack.settings
        ingest(settings, sorted(p for p in SAMPLES.iterdir() if p.is_file()), tenant=TENANT)
        api = start_api(settings, stack.work, stack.procs, apart=False)
        store = KeyStore(redis_store.connect(settings))
        query = {"Authorization": f"Bearer {store.create(tenant=TENANT, roles=[QUERY], name='q')[1]}"}
        writer = {"Authorization": f"Bearer {store.create(tenant=TENANT, roles=[INGEST], name='w')[1]}"}

        def ask(body: dict[str, Any]) -> Callable[[httpx.Client], httpx.Response]:
            return lambda http: http.post("/v1/query", json=body, headers=query)

        def flood(http: httpx.Client) -> httpx.Response:
            last = http.post("/v1/query", json={"question": QUESTION}, headers=query)
            rid = last.json().get("request_id", "x")
            for _ in range(300):
                last = http.post("/v1/feedback", json={"request_id": rid, "rating": "up"}, headers=query)
                if last.status_code == 429:
                    break
            return last

        attacks: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
            ("injection screen: 'ignore' + 1,975 spaces", ask({"question": "system prompt.\nignore" + " " * 1975 + "x"})),
            ("json_schema $ref to a URL", ask({"question": QUESTION, "json_schema": {"$ref": f"{listener.url}/a"}})),
            ("json_schema $ref file:///dev/zero", ask({"question": QUESTION, "json_schema": {"$ref": "file:///dev/zero"}})),
            (
                "json_schema pattern ^(\\w+\\s?)*$",
                ask({"question": QUESTION, "json_schema": {"type": "object", "properties": {"answer": {"type": "string", "pattern": "^(\\w+\\s?)*$"}}}}),
            ),
            ("json_schema of 1 MB", ask({"question": QUESTION, "json_schema": {"type": "object", "description": "x" * 1_000_000}})),
            ("DOCX bomb: 400 MB inflated", lambda http: upload_and_wait(http, writer, docx_bomb(400 << 20), "bomb.docx")),
            ("feedback flood: 300 at once", flood),
        ]  # fmt: skip
        outcomes = [run(api, name, attack, args.limit_s) for name, attack in attacks]
    print(f"{'attack':<44} {'status':>7} {'code':<22} {'seconds':>8} {'healthz max':>12}")
    for o in outcomes:
        worst = max(o.healthz_ms, default=0.0)
        print(f"{o.name:<44} {o.status!s:>7} {o.code:<22} {o.seconds:8.2f} {worst:10.0f} ms")
    print(f"listener requests: {listener.requests or 'none'}")
    worst_all = max((max(o.healthz_ms, default=0.0) for o in outcomes), default=0.0)
    print(f"attacks={len(outcomes)}")
    print(f"stalled={sum(max(o.healthz_ms, default=0.0) > 1000 for o in outcomes)}")
    print(f"listener_requests={len(listener.requests)}")
    print(f"healthz_max_ms={worst_all:.0f}")


if __name__ == "__main__":
    main()
