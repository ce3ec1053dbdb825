"""Connecting to Temporal, with a clear error when it is not there, and Keel's data converter."""

from __future__ import annotations

import logging

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from keel.config import Settings
from keel.errors import TemporalUnavailable
from observability.tracing import interceptors
from temporal.data_converter import DATA_CONVERTER, data_converter

__all__ = ["DATA_CONVERTER", "connect", "data_converter", "metrics_runtime"]

log = logging.getLogger("keel.temporal")


def metrics_runtime(port: int) -> Runtime | None:
    """A Temporal runtime serving the SDK's worker metrics (task slots, poll latencies, schedule-to-
    start) on 127.0.0.1:`port`; None for 0, or when the port is taken (a warning, not a failure)."""
    if not port:
        return None
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}")))
    except Exception as exc:  # the core raises a plain error when it cannot bind
        log.warning("Temporal SDK metrics are off: cannot serve them on 127.0.0.1:%s (%s)", port, exc)
        return None


def tls_config(settings: Settings) -> TLSConfig | bool:
    """How to reach Temporal: in the clear (False), over TLS with the system's roots (True), or
    with a CA, a client certificate for mTLS and a server name of the operator's."""
    files = (settings.temporal_tls_ca_file, settings.temporal_tls_cert_file, settings.temporal_tls_key_file)
    if (settings.temporal_tls_cert_file is None) != (settings.temporal_tls_key_file is None):
        raise ValueError("KEEL_TEMPORAL_TLS_CERT_FILE and KEEL_TEMPORAL_TLS_KEY_FILE are given together")
    if not any(files) and not settings.temporal_tls_server_name:
        return bool(settings.temporal_tls or settings.temporal_api_key)
    ca, cert, key = (path.read_bytes() if path else None for path in files)
    return TLSConfig(
        server_root_ca_cert=ca, client_cert=cert, client_private_key=key, domain=settings.temporal_tls_server_name
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client with tracing (workers built from it trace too) and Keel's data converter;
    `runtime` for a worker process whose SDK metrics are served (metrics_runtime)."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            interceptors=interceptors(),
            data_converter=data_converter(settings),
            runtime=runtime,
            tls=tls_config(settings),
            api_key=settings.temporal_api_key,
        )
    except RuntimeError as exc:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); is the stack up? try `make run`"
        ) from exc
