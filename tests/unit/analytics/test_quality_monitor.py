"""The live quality processor: a camera that goes covered, dark or blurred opens one `quality`
event after the minimum duration and closes it once clear, with hysteresis between the enter and
exit thresholds; measured on the records' thumbnails, as the worker sees them."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dinostream.analytics.processor_set import ProcessorSet
from dinostream.analytics.quality import measure_jpeg
from dinostream.analytics.quality_monitor import QualityMonitor
from dinostream.analytics.worker import default_processors
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnalyticsSettings, QualitySettings
from tests.unit.analytics.test_quality import scene

FPS = 2
CLEAN = scene(320, 240)


def thumb(rgb: np.ndarray) -> bytes:
    im = Image.fromarray(rgb)
    im.thumbnail((160, 160))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=75)
    return buf.getvalue()


def blurred(sigma: float) -> np.ndarray:
    return np.asarray(Image.fromarray(CLEAN).filter(ImageFilter.GaussianBlur(sigma)))


VIEWS = {
    "clean": thumb(CLEAN),
    "covered": thumb(np.full_like(CLEAN, 20)),
    "dark": thumb((CLEAN * 0.06).astype(np.uint8)),
    "blurred": thumb(blurred(5)),
}


def records(plan: list[tuple[str | bytes, float]], stream: str = "cam-1") -> list[FrameEmbedding]:
    """`plan`: (view, seconds) in order, at FPS."""
    out = []
    for view, seconds in plan:
        jpeg = VIEWS[view] if isinstance(view, str) else view
        for _ in range(round(seconds * FPS)):
            n = len(out)
            out.append(
                FrameEmbedding(
                    stream=stream,
                    seq=n,
                    pts=n / FPS,
                    ts=1_700_000_000 + n / FPS,
                    model="test",
                    untrained=True,
                    cls=np.ones(8, np.float16),
                    pooled=np.ones(8, np.float16),
                    patches=np.ones((2, 2, 8), np.float16),
                    thumbnail=jpeg,
                )
            )
    return out


def run(mon: QualityMonitor, recs: list[FrameEmbedding]) -> list[Event]:
    events = [e for r in recs for e in mon.process(r)]
    return events + mon.flush(recs[0].stream)


@pytest.mark.parametrize("condition", ["covered", "dark", "blurred"])
def test_a_camera_that_goes_bad_opens_one_event_and_closes_it_when_clear(condition: str) -> None:
    events = run(QualityMonitor(QualitySettings()), records([("clean", 10), (condition, 8), ("clean", 10)]))
    assert [e.status for e in events] == ["open", "closed"]
    opened, closed = events
    assert opened.id == closed.id and opened.type == "quality"
    assert condition in closed.details["conditions"] and closed.details["condition"] == closed.details["conditions"][0]
    assert opened.t_start == pytest.approx(10.0) and closed.t_end == pytest.approx(17.5, abs=1.0)
    assert opened.t == pytest.approx(10.0) and 13.0 <= opened.frames[1] / FPS <= 14.0  # after min_duration_s
    assert 0 < closed.score <= 1 and Event.decode(closed.encode()) == closed


def test_a_short_blip_opens_nothing_and_a_clean_camera_nothing_at_all() -> None:
    s = QualitySettings()
    assert run(QualityMonitor(s), records([("clean", 10), ("covered", 2), ("clean", 10)])) == []
    assert run(QualityMonitor(s), records([("clean", 30)])) == []


def test_good_moments_shorter_than_clear_s_keep_one_event() -> None:
    plan = [("clean", 5), ("covered", 5), ("clean", 1.5), ("covered", 5), ("clean", 5)]
    events = run(QualityMonitor(QualitySettings()), records(plan))
    assert [e.status for e in events] == ["open", "closed"]


def test_hysteresis_between_enter_and_exit() -> None:
    sharp, mid, soft = (measure_jpeg(thumb(blurred(s))) for s in (0.0, 1.6, 6.0))
    assert sharp and mid and soft and sharp.sharpness > mid.sharpness > soft.sharpness
    s = QualitySettings(
        blur_enter=(mid.sharpness + soft.sharpness) / 2,
        blur_exit=(sharp.sharpness + mid.sharpness) / 2,
        min_duration_s=1.0,
        clear_s=1.0,
    )
    mids, softs, sharps = thumb(blurred(1.6)), thumb(blurred(6.0)), thumb(blurred(0.0))
    # In the band from the start: never blurred.
    assert run(QualityMonitor(s), records([(sharps, 5), (mids, 10)])) == []
    # Entered, then in the band: stays open until sharp again.
    events = run(QualityMonitor(s), records([(sharps, 5), (softs, 3), (mids, 10), (sharps, 5)]))
    assert [e.status for e in events] == ["open", "closed"]
    assert events[-1].t_end == pytest.approx(17.5, abs=1.0)  # the last frame measured in the band is still blurred


def test_state_survives_a_restart_mid_event() -> None:
    recs = records([("clean", 5), ("covered", 8), ("clean", 6)])
    whole = run(QualityMonitor(QualitySettings()), recs)
    first = QualityMonitor(QualitySettings())
    events = [e for r in recs[:20] for e in first.process(r)]
    second = QualityMonitor(QualitySettings())
    second.restore("cam-1", first.snapshot("cam-1"))
    events += [e for r in recs[20:] for e in second.process(r)] + second.flush("cam-1")
    assert events == whole


def test_it_runs_in_every_deployment_and_is_configured_per_stream() -> None:
    procs = ProcessorSet(default_processors(AnalyticsSettings()))
    assert "quality" in procs.names
    procs.configure("cam-2", "quality", {"min_duration_s": 0.0})
    with pytest.raises(ValueError, match="blur_exit .* must be at least blur_enter"):
        procs.configure("cam-2", "quality", {"blur_enter": 90.0})
    events = [e for r in records([("clean", 2), ("dark", 2)], "cam-2") for e in procs.process(r)]
    assert [(e.type, e.status) for e in events if e.type == "quality"] == [("quality", "open")]
