"""Connecting to Temporal, with a clear error when it is not there, and Keel's data converter."""

from __future__ import annotations

from temporalio.client import Client

from keel.config import Settings
from keel.errors import TemporalUnavailable
from observability.tracing import interceptors
from temporal.data_converter import DATA_CONVERTER, data_converter

__all__ = ["DATA_CONVERTER", "connect", "data_converter"]


async def connect(settings: Settings) -> Client:
    """A client with tracing (workers built from it trace too) and Keel's data converter."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            interceptors=interceptors(),
            data_converter=data_converter(settings),
        )
    except RuntimeError as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is the stack up? try `make run`"
        ) from exc
