"""Connecting to Temporal from the CLI and the API, with a clear error when it is not there."""

from __future__ import annotations

from temporalio.client import Client

from keel.config import Settings
from keel.errors import TemporalUnavailable
from keel.tracing import interceptors


async def connect(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace, interceptors=interceptors()
        )
    except RuntimeError as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is the stack up? try `make run`"
        ) from exc
