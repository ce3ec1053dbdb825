"""`python -m infra.server`: the Temporal workers and the HTTP API in one process (`make run`).

The API starts QueryWorkflow with eager start: the start response carries the workflow's first
task to a worker on the same client, so a query runs at once instead of waiting for the server
to dispatch it (`make bench-query`: the dispatch took 4-15 ms after the start request, more at
the tail). Eager start needs the API's client and the query worker in one process; with the
embedded Qdrant Edge, which only one process may open, that process is the worker's anyway.

With a Qdrant server the two can still run apart and scale apart: `python -m infra.worker` for
workers, `uvicorn api.main:app` for API-only processes, whose queries start the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

import uvicorn

from api.main import create_app
from infra.worker import hosted
from keel.config import Settings, get_settings


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn would take SIGTERM for itself and re-raise it once the API stopped, killing
        # the process before the workers drain; serve() below handles signals for both.
        yield


async def serve(settings: Settings) -> None:
    async with hosted(settings, "keel-server") as (client, deps):
        app = create_app(client, deps.indexes)
        config = uvicorn.Config(
            app, host=settings.api_host, port=settings.api_port, log_level="info", access_log=settings.api_access_log
        )
        server = _Server(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        print("worker ready", flush=True)
        await server.serve()
        if not server.started:  # the port was taken, or the app failed to start
            raise SystemExit(f"the API could not start on {settings.api_host}:{settings.api_port}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    sys.setswitchinterval(max(0.0001, settings.gil_switch_interval_ms / 1000))
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
