"""Operator-given sources checked before anything starts: URL policy, then every source opened (in
parallel) so a broken URL stops start-up with its reason, and unique stream ids."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from dinostream.core.settings import IngestSettings
from dinostream.ingest.av_source import VideoInfo, check_source, stream_id_for
from dinostream.ingest.url_policy import check_url


@dataclass(frozen=True)
class SourceSpec:
    stream: str
    url: str
    info: VideoInfo | None = None  # the header read when the source was checked, if it was opened
    trusted: bool = True  # the operator's own (command line, settings); False: added through the API


async def plan_sources(urls: Sequence[str], settings: IngestSettings) -> list[SourceSpec]:
    """Stream ids for the given URLs, after checking them against the URL policy (as trusted,
    operator-given sources) and opening every source (in parallel, within the open timeout) so a
    broken URL stops start-up with its reason instead of failing later."""
    for url in urls:
        await asyncio.to_thread(check_url, url, settings, trusted=True)
    infos = await asyncio.gather(*(asyncio.to_thread(check_source, url, settings, connect=True) for url in urls))
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    for url, info in zip(urls, infos, strict=True):
        stream = base = stream_id_for(url)
        n = 2
        while stream in seen:
            stream = f"{base}-{n}"[:64]
            n += 1
        seen.add(stream)
        specs.append(SourceSpec(stream, url, info))
    return specs
