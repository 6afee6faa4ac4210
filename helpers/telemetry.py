"""OpenTelemetry for notebooks: keep spans in memory and print them as a tree.

    exporter = telemetry.span_exporter()   # spans of this process end up here
    ...make some calls...
    print(telemetry.tree(exporter.get_finished_spans()))

OpenTelemetry allows one global TracerProvider per process (setting a second one
is ignored with a warning), and the grpc client instrumentation always uses the
global one. So `span_exporter()` installs it the first time and hands back the
same in-memory exporter every time after that, cleared: re-running a cell works.
"""

from __future__ import annotations

from typing import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None
_provider: TracerProvider | None = None


def span_exporter() -> InMemorySpanExporter:
    """The in-memory exporter behind this process's global TracerProvider, emptied."""
    global _exporter, _provider
    if _exporter is None:
        _exporter = InMemorySpanExporter()
        _provider = TracerProvider()
        _provider.add_span_processor(SimpleSpanProcessor(_exporter))
        trace.set_tracer_provider(_provider)
    _exporter.clear()
    return _exporter


def tracer_provider() -> TracerProvider:
    """The global TracerProvider that `span_exporter()` installed."""
    if _provider is None:
        span_exporter()
    assert _provider is not None
    return _provider


def _kind(span: ReadableSpan) -> str:
    return span.kind.name if span.kind is not None else ""


def tree(spans: Sequence[ReadableSpan], durations: bool = False) -> str:
    """The spans as an indented tree, one trace after the other, children in start order.

    A span whose parent is not among `spans` starts a tree of its own: two trees
    printed for one request mean the trace context was lost on the way.
    """
    by_id = {span.context.span_id: span for span in spans}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent if parent in by_id else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: s.start_time or 0)
    lines: list[str] = []

    def show(span: ReadableSpan, depth: int) -> None:
        label = f"{span.name} ({_kind(span)})"
        if durations and span.end_time and span.start_time:
            label += f" {(span.end_time - span.start_time) / 1e6:.1f} ms"
        lines.append(("   " * (depth - 1) + "└─ " if depth else "") + label)
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for index, root in enumerate(children.get(None, [])):
        lines.append(f"trace {index + 1}:")
        show(root, 0)
    return "\n".join(lines)


def trace_ids(spans: Sequence[ReadableSpan]) -> set[int]:
    """The distinct trace ids among `spans`: one per request if context travelled."""
    return {span.context.trace_id for span in spans}
