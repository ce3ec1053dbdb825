"""OpenTelemetry: one trace from the HTTP request through QueryWorkflow and each activity.

Temporal's TracingInterceptor (on the client, hence also on the worker built from it) carries the
trace context in workflow and activity headers; FastAPI's instrumentation opens the request span.
Export: OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (Jaeger, Tempo, Phoenix, Langfuse...);
otherwise spans go to a JSON-lines file per process under `<data_dir>/traces/`, so a trace id
returned to a caller can be looked up offline with no collector running.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

_configured = False
MAX_FILE_BYTES = 50 * 1024 * 1024


class JsonLinesExporter(SpanExporter):
    """Spans as JSON lines; the file is rotated once (`.1`) when it passes MAX_FILE_BYTES."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(_span_dict(s)) for s in spans]
        with self._lock:
            if self.path.exists() and self.path.stat().st_size > MAX_FILE_BYTES:
                self.path.replace(self.path.with_suffix(".jsonl.1"))
            with open(self.path, "a") as f:
                f.write("\n".join(lines) + "\n")
        return SpanExportResult.SUCCESS


def _span_dict(s: ReadableSpan) -> dict[str, Any]:
    ctx = s.get_span_context()
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent else None,
        "name": s.name,
        "start_ns": s.start_time,
        "end_ns": s.end_time,
        "status": s.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (s.attributes or {}).items()},
    }


def _plain(v: Any) -> Any:
    return v if isinstance(v, str | int | float | bool) or v is None else list(v)


def setup_tracing(service: str, data_dir: Path, exporter: SpanExporter | None = None) -> TracerProvider:
    """Install the process's tracer provider (once; later calls return the same provider)."""
    global _configured
    current = trace.get_tracer_provider()
    if _configured and isinstance(current, TracerProvider):
        return current
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        else:
            exporter = JsonLinesExporter(data_dir / "traces" / f"{service}.jsonl")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
    return provider


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else ""


def interceptors() -> list[Any]:
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor()]
