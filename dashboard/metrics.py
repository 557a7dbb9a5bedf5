"""`GET /metrics`: Prometheus text exposition built from live state at scrape time.

No global registry: each app gets its own `CollectorRegistry` holding one custom collector that
calls a list of *family callables* at every scrape. A component that wants to export metrics
adds a callable returning prometheus_client metric families; nothing is updated on the hot path.

    >>> router = metrics_router([stream_families(manager.healths)])
    >>> app.include_router(router)

A callable that raises is logged and skipped (the scrape still answers, with the other
families, plus `dinostream_metrics_errors_total` counting the failures).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

Families = Callable[[], Iterable[Metric]]

# Every state a stream supervisor reports; the state gauge is one-hot over these.
STREAM_STATES = ("connecting", "live", "stalled", "backoff", "failed", "ended", "stopped")


class CallbackCollector(Collector):
    """A Prometheus collector over callables that build metric families on demand."""

    def __init__(self, families: Sequence[Families] = ()) -> None:
        self.families: list[Families] = list(families)
        self.errors = 0

    def add(self, families: Families) -> None:
        """Export more families (call before the first scrape, or at any time: read at scrape)."""
        self.families.append(families)

    def collect(self) -> Iterator[Metric]:
        for build in list(self.families):
            try:
                metrics = list(build())
            except Exception:  # one broken exporter must not take the whole endpoint down
                self.errors += 1
                log.exception("metrics callable %r failed", build)
                continue
            yield from metrics
        errors = CounterMetricFamily("dinostream_metrics_errors", "Metric callables that raised during a scrape.")
        errors.add_metric([], self.errors)
        yield errors


def _as_dict(health: Any) -> Mapping[str, Any]:
    if isinstance(health, Mapping):
        return health
    if dataclasses.is_dataclass(health) and not isinstance(health, type):
        return dataclasses.asdict(health)
    if hasattr(health, "model_dump"):
        return dict(health.model_dump())
    return dict(vars(health))


def stream_families(healths: Callable[[], Mapping[str, Any]]) -> Families:
    """Families for per-stream health: `healths()` maps stream id to its health (a dict, a
    dataclass or a pydantic model with state, frames_in, frames_out, drops, reconnects)."""

    def build() -> list[Metric]:
        state = GaugeMetricFamily(
            "dinostream_stream_state", "1 for the stream's current state, 0 for the others.", labels=["stream", "state"]
        )
        counters = {
            key: CounterMetricFamily(f"dinostream_stream_{key}", help_text, labels=["stream"])
            for key, help_text in (
                ("frames_in", "Frames decoded and sampled from the source."),
                ("frames_out", "Frames handed to the model stage."),
                ("drops", "Frames dropped because a queue was full (live sources drop the oldest)."),
                ("reconnects", "Times the source was reopened after it failed or ended."),
                ("decode_seconds", "Seconds spent decoding and scaling (latency per frame: rate / frames_in rate)."),
            )
        }
        for stream, raw in sorted(healths().items()):
            h = _as_dict(raw)
            current = str(h.get("state", ""))
            for s in (*STREAM_STATES, *(() if current in STREAM_STATES or not current else (current,))):
                state.add_metric([stream, s], 1.0 if s == current else 0.0)
            for key, family in counters.items():
                value = h.get("decode_s" if key == "decode_seconds" else key)
                if isinstance(value, (int, float)):
                    family.add_metric([stream], float(value))
        return [state, *counters.values()]

    return build


def metrics_router(families: Sequence[Families] = ()) -> tuple[APIRouter, CallbackCollector]:
    """A router serving `GET /metrics` from a registry of its own, and the collector to extend."""
    registry = CollectorRegistry(auto_describe=False)
    collector = CallbackCollector(families)
    registry.register(collector)
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def get_metrics() -> Response:
        # On the event loop on purpose: the callables read state the loop owns, and it is cheap.
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router, collector


def component_families(component: str, stats: Callable[[], Any], help_text: str = "") -> Families:
    """Families for a component's stats dict (a dict, dataclass or pydantic model): every number
    becomes the gauge `dinostream_<component>_<key>`; a dict of numbers (e.g. events by type)
    becomes one gauge with a `key` label. Text and None values are skipped.

    >>> metrics_router([component_families("embedding", lambda: stage.batcher.stats())])
    """

    def build() -> list[Metric]:
        out: list[Metric] = []
        for key, value in sorted(_as_dict(stats()).items()):
            name = f"dinostream_{component}_{key}"
            doc = f"{help_text or component} {key}".strip()
            if isinstance(value, bool) or isinstance(value, (int, float)):
                family = GaugeMetricFamily(name, doc)
                family.add_metric([], float(value))
                out.append(family)
            elif isinstance(value, Mapping) and value and all(isinstance(v, (int, float)) for v in value.values()):
                family = GaugeMetricFamily(name, doc, labels=["key"])
                for label, v in sorted(value.items()):
                    family.add_metric([str(label)], float(v))
                out.append(family)
        return out

    return build
