"""The processors a deployment runs, as one unit: route records, save and restore per-stream state.

The per-frame work several processors read (`Processor.passes`: regions and tracks) is computed
once for each frame before they are called. Pure like the processors themselves; the Faust agent
and `dinostream analyze` both use it.

    procs = ProcessorSet([SceneChangeDetector(s.scene_change)])
    events = procs.process(record)
    saved = procs.state(record.stream)            # JSON-serialisable: state and settings overrides
    ProcessorSet([...]).load(record.stream, saved)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dinostream.analytics.processor import FramePass, Processor
from dinostream.core.records import Event, FrameEmbedding


class ProcessorSet:
    def __init__(self, processors: Sequence[Processor[Any]]) -> None:
        names = [p.name for p in processors]
        if len(set(names)) != len(names):
            raise ValueError(f"processor names must be unique, got {names}")
        self.processors = list(processors)
        self._by_name = {p.name: p for p in processors}
        # Each shared pass once, however many processors read it.
        self.passes: list[FramePass] = list({id(x): x for p in processors for x in p.passes}.values())

    @property
    def names(self) -> list[str]:
        return list(self._by_name)

    def process(self, record: FrameEmbedding) -> list[Event]:
        for shared in self.passes:
            shared.observe(record)
        return [ev for p in self.processors for ev in p.process(record)]

    def flush(self, stream: str) -> list[Event]:
        for shared in self.passes:
            shared.end(stream)
        return [ev for p in self.processors for ev in p.flush(stream)]

    def configure(self, stream: str, processor: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Override one processor's settings for one stream; ValueError names what is wrong."""
        proc = self._by_name.get(processor)
        if proc is None:
            raise ValueError(f"unknown processor {processor!r}; known: {', '.join(self._by_name)}")
        return proc.configure(stream, changes).model_dump(mode="json")

    def settings(self, stream: str) -> dict[str, dict[str, Any]]:
        return {p.name: p.settings_for(stream).model_dump(mode="json") for p in self.processors}

    def state(self, stream: str, processor: str) -> dict[str, Any]:
        """One processor's state and settings overrides for one stream."""
        proc = self._by_name[processor]
        overrides = proc.overrides(stream)
        return {
            "state": proc.snapshot(stream),
            "settings": None if overrides is None else overrides.model_dump(mode="json"),
        }

    def load(self, stream: str, processor: str, saved: dict[str, Any]) -> None:
        proc = self._by_name.get(processor)
        if proc is None:  # a processor that was removed from the deployment: nothing to restore
            return
        if saved.get("settings") is not None:
            proc.configure(stream, saved["settings"])
        proc.restore(stream, saved.get("state") or {})
