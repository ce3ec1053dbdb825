"""`make llm MODEL=/path/to/model.gguf`: a local model beside the stack, as one more provider.

llama.cpp's OpenAI-compatible server from the `xllamacpp` wheel on PyPI, on loopback. Keel ships
no weights and fetches none: MODEL is a GGUF file you have. `up` starts the model's process (its
own session, pid file and log, like the rest of the stack), waits until it answers, writes the
provider and its routes to `<data dir>/llm.json`, and restarts the server process so its workers
read it (`wired`); `make down` stops it with the rest.

    python -m infra.llm up MODEL.gguf     # start it and wire it in
    python -m infra.llm down              # stop it and unwire it
    python -m infra.llm serve MODEL.gguf  # the model's process itself (what `up` starts)

The model also reads each citation back (`generation.verify`): a yes/no question per cited
sentence on the passage's one sentence that would have to say it, within `KEEL_VERIFY_BUDGET_S`
per answer. `KEEL_VERIFIER` names another provider for it, or `none`.

The provider asks with `answer-small.v1` (a short system message and one worked example, the
same for every question, so the server's prompt cache keeps them) and stops at the next
"Question:". Its deadlines suit a CPU: a first token within `KEEL_LLM_FIRST_TOKEN_S`, the whole
answer within `KEEL_LLM_ANSWER_S`, one call at a time; past them the chain falls through to the
extractive answer, so a slow box answers late or extractively, never not at all.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from infra.services import ServiceError
from keel.config import Settings, get_settings

LOCAL = "local"
SMALL_PROMPT = "answer-small.v1"
STOP = ("\nQuestion:", "\nSources:")


def config_path(settings: Settings) -> Path:
    return settings.data_dir / "llm.json"


@dataclass(frozen=True, kw_only=True)
class Wired:
    """What `up` wired in: the local model's provider, its routes, and the verifier it names."""

    providers: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, list[str]] = field(default_factory=dict)
    verifier: str = ""


def wired(settings: Settings) -> Wired:
    """The local model as `up` wired it in (nothing if it did not)."""
    path = config_path(settings)
    if not path.is_file():
        return Wired()
    data = json.loads(path.read_text())
    return Wired(
        providers=list(data.get("providers", [])),
        routes=dict(data.get("routes", {})),
        verifier=str(data.get("verifier", "")),
    )


def provider_config(settings: Settings, port: int, model: Path) -> dict[str, Any]:
    return {
        "providers": [
            {
                "name": LOCAL,
                "base_url": f"http://127.0.0.1:{port}/v1",
                "model": model.stem,
                "prompt": SMALL_PROMPT,
                "stop": list(STOP),
                "first_token_timeout_s": settings.llm_first_token_s,
                "attempt_timeout_s": settings.llm_answer_s,
                "max_in_flight": 1,
            }
        ],
        # Both answer routes; a route an operator set in KEEL_ROUTES keeps its links first.
        "routes": {"cheap": [LOCAL], "strong": [LOCAL]},
        # It reads its own citations back, one evidence sentence at a time (generation/verify.py):
        # a small model's answers are where citations go wrong. KEEL_VERIFIER names another, or
        # `none`.
        "verifier": LOCAL,
    }


def up(settings: Settings, model: Path) -> None:
    from infra import stack

    model = model.expanduser().resolve()
    if not model.is_file():
        raise ServiceError(f"no model file at {model}: pass MODEL=/path/to/model.gguf")
    if (pid := stack.running(settings, "llm")) is None:
        pid = stack.spawn_python(settings, "llm", ["-m", "infra.llm", "serve", str(model)])
        print(f"llm       starting {model.name} (loads the weights)...", flush=True)
        stack.wait_for_line(settings.data_dir / "logs" / "llm.log", "llm ready", pid, timeout=300)
    _wait_healthy(settings.llm_port)
    config_path(settings).write_text(json.dumps(provider_config(settings, settings.llm_port, model), indent=1))
    print(
        f"llm       pid {pid}: http://127.0.0.1:{settings.llm_port}/v1  (provider '{LOCAL}', routes cheap and strong)"
    )
    if stack.running(settings, "server") is not None:
        print("server    restarting so its workers use the model...", flush=True)
        stack.restart_server(settings)
    print("ask away: keel query \"...\" (answers name provider 'local'); stop with make down")


def down(settings: Settings) -> None:
    config_path(settings).unlink(missing_ok=True)


def serve(settings: Settings, model: Path) -> None:
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = str(model)
    params.n_ctx = settings.llm_context_tokens
    params.n_parallel = 1
    params.cpuparams.n_threads = settings.llm_threads
    params.cpuparams_batch.n_threads = settings.llm_threads
    params.hostnames = ["127.0.0.1"]  # loopback only: the model has no key
    params.port = settings.llm_port
    params.cache_prompt = True  # the system message and the example are the same every time
    server = xlc.Server(params)
    print(f"llm ready {server.listening_address}", flush=True)
    stopped = False

    def stop(*_: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopped:
        time.sleep(0.5)
    del server


def _wait_healthy(port: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise ServiceError(f"the model server on port {port} did not answer /health within {timeout:.0f}s")


def main() -> None:
    args = sys.argv[1:]
    settings = get_settings()
    try:
        if args[:1] == ["up"] and len(args) == 2:
            up(settings, Path(args[1]))
        elif args[:1] == ["serve"] and len(args) == 2:
            serve(settings, Path(args[1]))
        elif args == ["down"]:
            down(settings)
        else:
            sys.exit("usage: python -m infra.llm {up MODEL.gguf | down | serve MODEL.gguf}")
    except ServiceError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
