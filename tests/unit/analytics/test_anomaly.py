"""Anomaly detector on synthetic patch-feature sequences with known anomalies.

A scene is a grid of patch vectors drawn from a few "texture" clusters, with per-frame jitter;
a foreign object is a block of patches from a cluster the scene never shows.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dinostream.analytics.anomaly import PERSIST, AnomalyDetector
from dinostream.analytics.patch_memory import greedy_coreset, patch_features
from dinostream.core.records import Event, FrameEmbedding
from dinostream.core.settings import AnomalySettings
from tests.states import assert_states_close

DIM = 32
GRID = 8
FPS = 2.0
WARMUP = 20

# Fast defaults for tests: a short warm-up and a small bank; everything else as shipped.
# update_every_s 0: these tests read an update for every anomalous frame (the default sends one a second).
BASE = {"warmup_frames": WARMUP, "bank_size": 256, "global_bank_size": 32, "update_every_s": 0}


@dataclass(frozen=True)
class Region:
    """Patch rows r0..r1-1 and columns c0..c1-1 of the grid."""

    r0: int
    r1: int
    c0: int
    c1: int

    def contains(self, x: float, y: float) -> bool:
        return self.c0 / GRID <= x <= self.c1 / GRID and self.r0 / GRID <= y <= self.r1 / GRID


class Scene:
    """Deterministic synthetic stream: `frame(seq, ...)` builds one FrameEmbedding."""

    def __init__(self, seed: int = 0, jitter: float = 0.15, stream: str = "cam") -> None:
        rng = np.random.default_rng(seed)
        centres = rng.normal(size=(5, DIM))
        labels = rng.integers(0, len(centres), size=(GRID, GRID))
        self.base = centres[labels] + 0.3 * rng.normal(size=(GRID, GRID, DIM))
        self.foreign = rng.normal(size=(3, DIM)) * 1.5  # clusters the scene never shows
        self.light = rng.normal(size=DIM)
        self.jitter = jitter
        self.stream = stream
        self.seed = seed

    def frame(
        self,
        seq: int,
        *,
        region: Region | None = None,
        foreign: int = 0,
        light: float = 0.0,
        drift: np.ndarray | None = None,
        stream: str | None = None,
    ) -> FrameEmbedding:
        rng = np.random.default_rng([self.seed, seq])
        patches = self.base + self.jitter * rng.normal(size=self.base.shape) + light * self.light
        if drift is not None:
            patches = patches + drift
        if region is not None:
            block = patches[region.r0 : region.r1, region.c0 : region.c1]
            block[:] = self.foreign[foreign] + self.jitter * rng.normal(size=block.shape)
        pooled = patches.reshape(-1, DIM).mean(axis=0)
        return FrameEmbedding(
            stream=stream or self.stream,
            seq=seq,
            pts=seq / FPS,
            ts=1e9 + seq / FPS,
            model="test",
            untrained=True,
            cls=pooled + 0.1 * rng.normal(size=DIM),
            pooled=pooled,
            patches=patches,
        )

    def sequence(self, n: int, anomalies: dict[range, Region] | None = None, **kw: object) -> list[FrameEmbedding]:
        out = []
        for seq in range(n):
            region = next((r for span, r in (anomalies or {}).items() if seq in span), None)
            out.append(self.frame(seq, region=region, **kw))  # type: ignore[arg-type]
        return out


def run(det: AnomalyDetector, records: list[FrameEmbedding]) -> list[Event]:
    return [e for r in records for e in det.process(r)]


def detector(**changes: object) -> AnomalyDetector:
    return AnomalyDetector(AnomalySettings.model_validate({**BASE, **changes}))


TOP_RIGHT = Region(1, 3, 5, 8)
BOTTOM_LEFT = Region(4, 6, 0, 2)
CENTRE_BIG = Region(2, 6, 2, 6)

GT_CASES = {
    "foreign-block-top-right": TOP_RIGHT,
    "foreign-block-bottom-left-2x2": BOTTOM_LEFT,
    "foreign-block-centre-4x4": CENTRE_BIG,
}
CONFIGS = {
    "defaults": {},
    "neighbourhood-3": {"neighbourhood": 3},
    "pool-2": {"pool": 2},
    "patches-only": {"use_global": False},
    "k-1-no-projection": {"k": 1, "projection_dim": 0},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("region", GT_CASES.values(), ids=GT_CASES.keys())
def test_foreign_block_opens_one_event_with_box_and_peak_on_it(region: Region, config: dict[str, int]) -> None:
    scene = Scene(seed=1)
    span = range(40, 48)
    events = run(detector(**config), scene.sequence(60, {span: region}))
    assert events, "the foreign block must be reported"
    assert {e.id for e in events} == {events[0].id}
    assert [e.status for e in events] == ["open"] + ["update"] * (len(events) - 2) + ["closed"]
    opened, closed = events[0], events[-1]
    assert opened.t_start == span.start / FPS
    assert closed.t_end == (span.stop - 1) / FPS
    for ev in events:
        assert ev.type == "anomaly" and ev.score > ev.details["threshold"]
        (box,) = ev.boxes
        # The box covers the block (up to one pooled cell of slack) and not much more.
        cell = config.get("pool", 1) / GRID
        assert box.x0 <= region.c0 / GRID + 1e-9 and box.x1 >= region.c1 / GRID - cell
        assert box.y0 <= region.r0 / GRID + 1e-9 and box.y1 >= region.r1 / GRID - cell
        block_area = (region.r1 - region.r0) * (region.c1 - region.c0) / GRID**2
        assert (box.x1 - box.x0) * (box.y1 - box.y0) <= 4 * block_area + 2 * cell
        peak = ev.details["peak"]
        assert region.contains(peak["x"], peak["y"])
        assert ev.heatmap is not None
        assert ev.heatmap.values.shape == (GRID // config.get("pool", 1),) * 2


# Every scene flickers a little (lighting varies by up to +-0.1 per frame during the warm-up too).
NORMAL_CASES = {
    "normal-jitter": {},
    "strong-jitter-calibrates-itself": {"jitter": 0.4},
    "lighting-shift-at-the-edge-of-warm-up-range": {"light": 0.1},
    "lighting-shift-a-little-beyond-it": {"light": 0.12},
    "lighting-shift-the-other-way": {"light": -0.12},
}


def flicker(seq: int) -> float:
    return float(np.random.default_rng([123, seq]).uniform(-0.1, 0.1))


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("case", NORMAL_CASES.values(), ids=NORMAL_CASES.keys())
def test_normal_variation_raises_nothing(case: dict[str, float], config: dict[str, object]) -> None:
    scene = Scene(seed=2, jitter=case.get("jitter", 0.15))
    warm = [scene.frame(seq, light=flicker(seq)) for seq in range(WARMUP)]
    later = [scene.frame(seq, light=case.get("light", flicker(seq))) for seq in range(WARMUP, 80)]
    det = detector(**config)
    assert run(det, warm + later) == []
    fs = det.last_score("cam")
    assert fs is not None and fs.score < det.settings.threshold


def test_a_big_lighting_change_is_unusual_content() -> None:
    scene = Scene(seed=2)
    det = detector()
    run(det, [scene.frame(seq, light=flicker(seq)) for seq in range(WARMUP)])
    events = run(det, [scene.frame(seq, light=1.0) for seq in range(WARMUP, WARMUP + 4)])
    assert [e.status for e in events] == ["open", "update", "update"]
    assert events[0].details["source"] == "global"


def test_heatmap_peaks_on_the_block_and_is_low_elsewhere() -> None:
    scene = Scene(seed=3)
    det = detector()
    run(det, scene.sequence(WARMUP + 5))
    det.process(scene.frame(WARMUP + 5, region=TOP_RIGHT))
    fs = det.last_score("cam")
    assert fs is not None
    assert fs.heatmap.shape == (GRID, GRID) and fs.heatmap.min() >= 0 and fs.heatmap.max() <= 1
    inside = np.zeros((GRID, GRID), dtype=bool)
    inside[TOP_RIGHT.r0 : TOP_RIGHT.r1, TOP_RIGHT.c0 : TOP_RIGHT.c1] = True
    assert fs.heatmap[inside].min() == 1.0  # every foreign patch alone exceeds the threshold
    assert fs.heatmap[~inside].max() < 1.0
    assert inside[np.unravel_index(int(np.argmax(fs.patch_distances)), inside.shape)]


def test_lifecycle_one_id_while_it_lasts_then_cooldown_then_a_new_id() -> None:
    # open_after 2, close_after 3, cooldown 5 s = 10 frames at 2 fps.
    det = detector(open_after=2, close_after=3, cooldown_s=5.0)
    scene = Scene(seed=4)
    spans = {
        range(30, 36): TOP_RIGHT,
        range(38, 42): TOP_RIGHT,  # a 2-frame gap is shorter than close_after: the same occurrence
        range(47, 52): TOP_RIGHT,  # closed at 44 (3 normal frames), cooldown until frame 54: ignored
        range(60, 64): BOTTOM_LEFT,  # after the cooldown: a new occurrence
    }
    events = run(det, scene.sequence(80, spans))
    ids = list(dict.fromkeys(e.id for e in events))
    assert len(ids) == 2
    first = [e for e in events if e.id == ids[0]]
    second = [e for e in events if e.id == ids[1]]
    assert [e.status for e in first] == ["open"] + ["update"] * 8 + ["closed"]
    assert first[0].t_start == 30 / FPS and first[-1].t_end == 41 / FPS
    assert [e.t_end for e in first[:-1]] == sorted(e.t_end for e in first[:-1])
    assert all(b.score >= a.score for a, b in zip(first, first[1:], strict=False))  # score = max so far
    assert first[-1].details["anomalous_frames"] == 10
    assert second[0].status == "open" and second[0].t_start == 60 / FPS
    assert second[-1].status == "closed" and second[-1].t_end == 63 / FPS
    # Deterministic ids: a replay gives the same ids.
    assert [e.id for e in run(detector(open_after=2, close_after=3), scene.sequence(80, spans))][:1] == ids[:1]


def test_an_open_anomaly_is_re_sent_at_most_every_update_every_s_also_across_a_restore() -> None:
    scene = Scene(seed=4)
    records = scene.sequence(70, {range(30, 50): TOP_RIGHT})  # 10 s anomalous at 2 fps
    every = run(detector(), records)
    spaced = run(detector(update_every_s=1.0), records)
    assert [e.status for e in every] == ["open"] + ["update"] * 18 + ["closed"]  # the negative: one a frame
    assert [e.status for e in spaced] == ["open"] + ["update"] * 9 + ["closed"]
    sent = [e.t_end for e in spaced[:-1]]
    assert sent == [e.t_end for e in every[:-1]][::2]  # the open at 15.5 s, then one a second
    assert spaced[-1] == every[-1]  # the closing event (peak, span, frames) is the same
    # The spacing is part of the saved state: restored mid-occurrence, the next update is not early.
    first = detector(update_every_s=1.0)
    got = run(first, records[:33])  # open at frame 31, an update at 33
    resumed = detector(update_every_s=1.0)
    resumed.restore("cam", json.loads(json.dumps(first.snapshot("cam"))))
    assert got + run(resumed, records[33:]) == spaced


def test_a_single_anomalous_frame_opens_nothing_with_open_after_2() -> None:
    scene = Scene(seed=5)
    assert run(detector(open_after=2), scene.sequence(50, {range(30, 31): TOP_RIGHT})) == []
    assert len(run(detector(open_after=1), scene.sequence(50, {range(30, 31): TOP_RIGHT}))) == 2  # open, closed


def test_flush_closes_an_open_event() -> None:
    det = detector()
    events = run(det, Scene(seed=6).sequence(40, {range(30, 40): CENTRE_BIG}))
    assert events[-1].status == "update"
    (closed,) = det.flush("cam")
    assert closed.status == "closed" and closed.id == events[0].id and closed.t_end == 39 / FPS
    assert det.flush("cam") == []


AGGRESSIVE_ADAPTATION = {"adapt_every": 1, "adapt_patches": 64, "adapt_interval": 5, "adapt_guard": 3}


def test_a_long_anomaly_is_never_learned_and_stays_one_event() -> None:
    # Adaptation at its most eager: every clearly normal frame feeds the bank, merged every 5
    # frames. A foreign object that stays for 200 frames still scores above threshold on every
    # one of them (documented limit: only what scores below adapt_below is ever learned).
    det = detector(**AGGRESSIVE_ADAPTATION)
    scene = Scene(seed=7)
    span = range(60, 260)
    records = scene.sequence(280, {span: TOP_RIGHT})
    events, hot = [], []
    for r in records:
        events += det.process(r)
        fs = det.last_score("cam")
        if r.seq in span:
            hot.append(fs is not None and fs.score > det.settings.threshold)
    assert all(hot)
    assert len({e.id for e in events}) == 1
    assert events[0].status == "open" and events[-1].status == "closed"
    assert events[-1].t_start == 60 / FPS and events[-1].t_end == 259 / FPS


def test_adaptation_follows_a_slow_drift_that_would_otherwise_alarm() -> None:
    scene = Scene(seed=8)
    direction = np.random.default_rng(99).normal(size=DIM)
    n = 300

    def records() -> list[FrameEmbedding]:
        # The whole scene slowly changes appearance (dust, daylight, a repainted wall).
        drift = [direction * max(0, seq - WARMUP) / (n - WARMUP) for seq in range(n)]
        return [scene.frame(seq, light=flicker(seq), drift=drift[seq]) for seq in range(n)]

    roomy = {"bank_size": 2048, "global_bank_size": 256}  # room to learn without forgetting
    eager = {"adapt_below": 1.2, "reservoir_size": 2048, **AGGRESSIVE_ADAPTATION}
    fixed = detector(adapt=False, **roomy)
    adaptive = detector(**roomy, **eager)
    assert run(fixed, records()), "without adaptation the drift ends up reported"
    assert run(adaptive, records()) == []
    # And the adapted model still sees a foreign object in the drifted scene.
    adaptive.process(scene.frame(n, drift=direction, region=CENTRE_BIG))
    fs = adaptive.last_score("cam")
    assert fs is not None and fs.score > adaptive.settings.threshold


def route(seq: int) -> Region:
    """A figure walking up and down the two left columns, one row a frame."""
    r = abs(seq % 12 - 6)
    return Region(r, r + 2, 0, 2)


def test_a_thing_seen_only_elsewhere_is_anomalous_where_it_never_was() -> None:
    # The figure walks its route through the warm-up and after: normal there. The same figure where
    # it never went is reported (a position-free memory has seen it, and would not).
    scene = Scene(seed=21)
    det = detector()
    assert run(det, [scene.frame(seq, region=route(seq)) for seq in range(60)]) == []
    stray = Region(3, 5, 5, 7)
    events = run(det, [scene.frame(seq, region=stray) for seq in range(60, 64)])
    assert [e.status for e in events] == ["open", "update", "update"]
    assert events[0].details["source"] == "patch"
    assert stray.contains(events[0].details["peak"]["x"], events[0].details["peak"]["y"])
    assert run(det, [scene.frame(seq, region=route(seq)) for seq in range(64, 90)])[-1].status == "closed"


def lit(scene: Scene, seq: int, level: float, response: np.ndarray, **kw: object) -> FrameEmbedding:
    """A frame under light `level`: every patch moves along the scene's light vector and along its own
    response (patches of different content answer a change of light differently)."""
    return scene.frame(seq, light=level, drift=level * response, **kw)  # type: ignore[arg-type]


def test_light_that_drifts_far_beyond_the_warm_up_is_followed_and_objects_are_still_found() -> None:
    scene = Scene(seed=22)
    response = np.random.default_rng(5).normal(size=(GRID, GRID, DIM)) * 0.5
    n = 220
    # The warm-up flickers by +-0.1; then the light swings slowly to six times that and back.
    levels = [flicker(seq) for seq in range(WARMUP)]
    levels += [0.6 * np.sin(np.pi * (seq - WARMUP) / (n - WARMUP)) for seq in range(WARMUP, n)]
    records = [lit(scene, seq, level, response) for seq, level in enumerate(levels)]
    det = detector()
    assert run(det, records) == []
    assert run(detector(adapt=False), records), "without following the light, the swing is reported"
    # The model that followed the light still finds a foreign block at the brightest moment.
    brightest = int(np.argmax(levels))
    det.process(lit(scene, n, levels[brightest], response, region=TOP_RIGHT))
    fs = det.last_score("cam")
    assert fs is not None and fs.score > det.settings.threshold and fs.source == "patch"


def test_a_covered_lens_is_an_anomaly() -> None:
    scene = Scene(seed=23)
    det = detector()
    run(det, scene.sequence(WARMUP + 10))
    rng = np.random.default_rng(0)
    dark = rng.normal(size=DIM) * 0.2  # what the hand in front of the lens looks like, everywhere alike
    covered = []
    for seq in range(WARMUP + 10, WARMUP + 14):
        rec = scene.frame(seq)
        patches = rec.patches.astype(np.float32)
        patches[:5, :5] = dark + 0.01 * rng.normal(size=(5, 5, DIM))  # 39 % of the view, from a corner
        pooled = patches.reshape(-1, DIM).mean(axis=0)
        covered.append(FrameEmbedding("cam", seq, seq / FPS, 1e9, "test", True, pooled, pooled, patches))
    events = run(det, covered)
    assert [e.status for e in events] == ["open", "update", "update"]


def test_events_follow_the_anomaly_and_two_anomalies_stay_two_events() -> None:
    # Open when the second anomalous frame is processed (0.5 s after the onset at 2 fps), close when
    # the third normal one is (1.5 s after the last anomalous frame). Two anomalies at different
    # places 3 s apart are two events: the cooldown only holds back a new one at the same place.
    scene = Scene(seed=24)
    det = detector()
    emitted = [
        (r.seq, e)
        for r in scene.sequence(60, {range(30, 36): TOP_RIGHT, range(42, 46): BOTTOM_LEFT})
        for e in det.process(r)
    ]
    opened = [seq for seq, e in emitted if e.status == "open"]
    closed = [(seq, e.t_start, e.t_end) for seq, e in emitted if e.status == "closed"]
    assert opened == [31, 43]
    assert closed == [(38, 30 / FPS, 35 / FPS), (48, 42 / FPS, 45 / FPS)]
    assert len({e.id for _, e in emitted}) == 2


def test_a_blip_elsewhere_just_before_an_anomaly_is_not_its_start() -> None:
    # One anomalous frame at the bottom left (not enough to open anything), then a foreign block at
    # the top right: the event is the block's, from its first frame.
    scene = Scene(seed=25)
    records = scene.sequence(30) + [scene.frame(30, region=BOTTOM_LEFT)]
    records += [scene.frame(seq, region=TOP_RIGHT) for seq in range(31, 36)] + scene.sequence(42)[36:]
    events = run(detector(), records)
    assert len({e.id for e in events}) == 1
    assert events[0].status == "open" and events[0].t_start == 31 / FPS
    assert TOP_RIGHT.contains(events[-1].details["peak"]["x"], events[-1].details["peak"]["y"])


def test_warm_up_length_is_respected_per_stream() -> None:
    det = detector()
    det.configure("short", {"warmup_frames": 10})
    det.configure("long", {"warmup_frames": 30})
    for name, n in (("short", 10), ("long", 30), ("cam", WARMUP)):
        scene = Scene(seed=9, stream=name)
        for seq in range(n):
            # An anomaly inside the warm-up is learned as normal, never reported.
            assert det.process(scene.frame(seq, region=TOP_RIGHT if seq == n - 2 else None)) == []
            assert det.last_score(name) is None
        assert det.ready(name)
        det.process(scene.frame(n))
        assert det.last_score(name) is not None


def test_warmup_zero_waits_for_learn_then_detects() -> None:
    det = detector(warmup_frames=0)
    scene = Scene(seed=10)
    assert run(det, scene.sequence(30, {range(20, 30): TOP_RIGHT})) == []
    assert not det.ready("cam")
    det.learn("cam", scene.sequence(20))
    assert det.ready("cam")
    events = run(det, [scene.frame(s, region=TOP_RIGHT) for s in range(40, 45)])
    assert [e.status for e in events] == ["open", "update", "update", "update"]


def test_learn_marks_new_content_normal_and_keeps_detecting_other_anomalies() -> None:
    det = detector()
    scene = Scene(seed=11)
    run(det, scene.sequence(WARMUP))
    moved_in = [scene.frame(s, region=BOTTOM_LEFT, foreign=1) for s in range(WARMUP, WARMUP + 10)]
    assert run(det, moved_in[:4]), "new furniture is reported at first"
    det.flush("cam")
    det.learn("cam", moved_in)  # the operator: "this is normal now"
    later = [scene.frame(s, region=BOTTOM_LEFT, foreign=1) for s in range(100, 120)]
    assert run(det, later) == []
    assert run(det, [scene.frame(s, region=TOP_RIGHT, foreign=2) for s in range(120, 124)])


def test_learn_rejects_foreign_records_and_too_few_frames() -> None:
    det = detector()
    with pytest.raises(ValueError, match="stream"):
        det.learn("cam", [Scene(stream="other").frame(0)])
    with pytest.raises(ValueError, match="at least 2"):
        det.learn("cam", [Scene().frame(0)])


def test_reset_closes_the_open_event_and_starts_a_new_warm_up() -> None:
    det = detector()
    scene = Scene(seed=12)
    events = run(det, scene.sequence(30, {range(25, 30): TOP_RIGHT}))
    assert events[-1].status == "update"
    (closed,) = det.reset("cam")
    assert closed.status == "closed" and closed.id == events[0].id
    assert not det.ready("cam") and det.snapshot("cam") == {}
    assert run(det, scene.sequence(WARMUP)) == [] and det.ready("cam")


def test_configure_changes_the_threshold_of_one_stream_at_run_time() -> None:
    det = detector()
    for name in ("strict", "lax"):
        run(det, Scene(seed=13, stream=name).sequence(WARMUP))
    det.configure("lax", {"threshold": 1000.0})
    strict = [Scene(seed=13, stream="strict").frame(s, region=TOP_RIGHT) for s in range(WARMUP, WARMUP + 4)]
    lax = [Scene(seed=13, stream="lax").frame(s, region=TOP_RIGHT) for s in range(WARMUP, WARMUP + 4)]
    assert run(det, strict)
    assert run(det, lax) == []
    with pytest.raises(ValueError, match="threshold"):
        det.configure("lax", {"threshold": -1})
    with pytest.raises(ValueError, match="warmup_frames"):
        det.configure("lax", {"warmup_frames": 1})


def test_streams_are_independent() -> None:
    det = detector()
    a = Scene(seed=14, stream="a").sequence(40, {range(30, 36): TOP_RIGHT})
    b = Scene(seed=15, stream="b").sequence(40)
    events = [e for pair in zip(a, b, strict=True) for r in pair for e in det.process(r)]
    assert events and {e.stream for e in events} == {"a"}


SNAPSHOT_CUTS = {
    "mid-warm-up": 7,
    "mid-holdout": WARMUP - 2,
    "right-after-warm-up": WARMUP,
    "event-candidate": 41,
    "event-open": 44,
    "event-closing": 50,
    "in-cooldown": 55,
    "reservoir-filling": 90,
}


@pytest.mark.parametrize("cut", SNAPSHOT_CUTS.values(), ids=SNAPSHOT_CUTS.keys())
def test_snapshot_restore_mid_stream_gives_identical_events(cut: int) -> None:
    settings = {**AGGRESSIVE_ADAPTATION, "adapt_interval": 13}
    scene = Scene(seed=16)
    records = scene.sequence(160, {range(40, 48): TOP_RIGHT, range(120, 126): BOTTOM_LEFT})
    whole = detector(**settings)
    full = run(whole, records)
    first = detector(**settings)
    got = run(first, records[:cut])
    saved = json.loads(json.dumps(first.snapshot("cam")))  # through JSON, as the worker stores it
    resumed = detector(**settings)
    resumed.restore("cam", saved)
    got += run(resumed, records[cut:])
    assert len(full) > 4
    assert got == full
    assert resumed.snapshot("cam") == whole.snapshot("cam")  # banks, reservoir, calibration: all of it


def test_a_faint_object_left_in_a_quiet_cell_alarms_once_it_stays() -> None:
    # In the warm-up something unfamiliar passes once (two frames at the top right): the level of a
    # single frame's most unusual cell is set by it. Then an object too faint for that level is left
    # in a quiet cell: it is kept out of the recent memory, and once it has stood out for PERSIST
    # frames an event opens there, which closes when it is taken away.
    scene = Scene(seed=3)
    passer, obj = Region(1, 2, 6, 7), Region(5, 6, 2, 3)
    records = []
    for seq in range(60):
        f = scene.frame(seq, region=passer if seq in (8, 9) else None)
        if 30 <= seq < 45:
            p = f.patches.copy()
            p[5, 2] = 0.6 * p[5, 2] + 0.4 * scene.foreign[1]
            f = FrameEmbedding(f.stream, f.seq, f.pts, f.ts, f.model, f.untrained, f.cls, f.pooled, p)
        records.append(f)
    det = detector()
    events, first = [], None
    for r in records:
        events += det.process(r)
        if r.seq == 30:
            first = det.last_score("cam")
    assert first is not None and first.patch_score < det.settings.threshold  # too faint for one frame
    opened = [e for e in events if e.status == "open"]
    assert len(opened) == 1 and 30 <= opened[0].frames[-1] < 30 + PERSIST + det.settings.open_after
    closed = [e for e in events if e.status == "closed"]
    assert len(closed) == 1 and closed[0].id == opened[0].id and closed[0].t_end < 45 / FPS
    assert obj.contains(closed[0].details["peak"]["x"], closed[0].details["peak"]["y"])


def test_something_that_lingers_but_changes_every_frame_does_not_build_up() -> None:
    # The same faint change as above, but different every frame (a figure turning at the end of its
    # route changes its pose): it never stands out as a thing that stays, so no event opens.
    scene = Scene(seed=3)
    passer = Region(1, 2, 6, 7)
    records = []
    for seq in range(60):
        f = scene.frame(seq, region=passer if seq in (8, 9) else None)
        if 30 <= seq < 45:
            p = f.patches.copy()
            p[5, 2] = 0.6 * p[5, 2] + 0.4 * scene.foreign[seq % 3]
            f = FrameEmbedding(f.stream, f.seq, f.pts, f.ts, f.model, f.untrained, f.cls, f.pooled, p)
        records.append(f)
    det = detector()
    scores = []
    for r in records:
        assert det.process(r) == []
        if r.seq >= 30 and det.last_score("cam") is not None:
            scores.append(det.last_score("cam").patch_score)
    assert max(scores) > 0.5  # it was seen, just not as a thing that stays


STATES = Path(__file__).parent / "states"
FIXTURE_SETTINGS = {**AGGRESSIVE_ADAPTATION, "adapt_interval": 13}


def fixture_records() -> list[FrameEmbedding]:
    return Scene(seed=16).sequence(160, {range(40, 48): TOP_RIGHT, range(120, 126): BOTTOM_LEFT})


def as_dicts(events: list[Event]) -> list[dict[str, object]]:
    return json.loads(json.dumps([e.to_dict() for e in events]))


class _NearHeatmap:
    """An event's heatmap (`{"h", "w", "u8"}`, base64 bytes) equal to another of the same shape whose
    bytes differ by at most one step: a score in float32's last digits can round to the next step."""

    def __init__(self, saved: dict[str, object]) -> None:
        self.saved = saved

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, dict) or other.keys() != self.saved.keys():
            return False
        if (other["h"], other["w"]) != (self.saved["h"], self.saved["w"]):
            return False
        a = np.frombuffer(base64.b64decode(str(other["u8"])), np.uint8).astype(int)
        b = np.frombuffer(base64.b64decode(str(self.saved["u8"])), np.uint8).astype(int)
        return a.shape == b.shape and int(np.abs(a - b).max(initial=0)) <= 1

    def __repr__(self) -> str:
        return f"near {self.saved!r}"


def as_saved(value: object) -> object:
    """Events (`as_dicts`) saved by an earlier release, or made from its state, to compare with
    today's: every field equal, scores and positions to 1e-5 (a kNN product summed in another order
    differs in float32's last digits, and a state carries that on), heatmap bytes to one step (a
    fresh install's numpy rounded one cell of one heatmap the other way)."""
    if isinstance(value, dict):
        if value.keys() == {"h", "w", "u8"}:
            return _NearHeatmap(value)
        return {k: as_saved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_saved(v) for v in value]
    return pytest.approx(value, rel=1e-5, abs=1e-9) if isinstance(value, float) else value


def test_restores_state_saved_by_the_release_before_the_shared_codec() -> None:
    # Saved by the release at ac29143 (state version 1: a position-free bank) from these very records,
    # with an event open at the cut. Its model keeps being scored as version 1 scored it: the events
    # after the cut are exactly those the release before version 2 emitted from this state.
    fixture = json.loads((STATES / "anomaly_v1.json").read_text())
    expected = json.loads((STATES / "anomaly_v1_events.json").read_text())
    assert fixture["state"]["v"] == 1 and expected["cut"] == fixture["cut"]
    resumed = detector(**FIXTURE_SETTINGS)
    resumed.restore("cam", fixture["state"])
    assert resumed.ready("cam")
    rest = run(resumed, fixture_records()[fixture["cut"] :])
    assert as_dicts(rest) == expected["events"]
    assert rest[0].status in ("update", "closed") and rest[0].id == fixture["state"]["occurrence"]["id"]
    # It saves as the current version (the model marked as a version-1 one) and restores to the same.
    saved = json.loads(json.dumps(resumed.snapshot("cam")))
    assert saved["v"] == 3 and "legacy_model" in saved and "model" not in saved
    again = detector(**FIXTURE_SETTINGS)
    again.restore("cam", saved)
    assert again.snapshot("cam") == resumed.snapshot("cam")


def test_restores_state_version_2() -> None:
    # Saved by the release that introduced version 2 from these records, an event open at the cut. Its
    # model keeps being scored as version 2 scored it: the events after the cut are exactly that
    # release's, and it saves as version 3 without a persistence calibration and restores to the same.
    fixture = json.loads((STATES / "anomaly_v2.json").read_text())
    assert fixture["state"]["v"] == 2
    records = fixture_records()
    resumed = detector(**FIXTURE_SETTINGS)
    resumed.restore("cam", fixture["state"])
    saved = json.loads(json.dumps(resumed.snapshot("cam")))
    assert saved["v"] == 3 and "model" in saved and "cal_persist" not in saved["model"]
    again = detector(**FIXTURE_SETTINGS)
    again.restore("cam", saved)
    rest = run(resumed, records[fixture["cut"] :])
    assert as_dicts(rest) == as_saved(fixture["events"])
    assert as_dicts(rest) == as_dicts(run(again, records[fixture["cut"] :]))
    assert [e.status for e in rest if e.status != "update"] == ["closed", "open", "closed"]


def test_restores_state_version_3() -> None:
    # Saved by the release that introduced version 3 (persistence) from these records, an event open
    # at the cut: it resumes as an uninterrupted run does.
    fixture = json.loads((STATES / "anomaly_v3.json").read_text())
    records = fixture_records()
    whole = detector(**FIXTURE_SETTINGS)
    run(whole, records[: fixture["cut"]])
    resumed = detector(**FIXTURE_SETTINGS)
    resumed.restore("cam", fixture["state"])
    assert_states_close(resumed.snapshot("cam"), whole.snapshot("cam"))
    rest = run(resumed, records[fixture["cut"] :])
    assert as_dicts(rest) == as_saved(fixture["events"])
    assert as_dicts(rest) == as_saved(as_dicts(run(whole, records[fixture["cut"] :])))
    assert [e.status for e in rest if e.status != "update"] == ["closed", "open", "closed"]


def test_a_version_1_warm_up_starts_over_and_unknown_versions_are_refused() -> None:
    fixture = json.loads((STATES / "anomaly_v1.json").read_text())
    mid_warm_up = {"v": 1, "cooldown_until": None, "warmup": {"target": 20}}
    det = detector()
    det.restore("cam", mid_warm_up)
    assert not det.ready("cam")
    records = Scene(seed=16).sequence(WARMUP + 1)
    assert run(det, records[:WARMUP]) == [] and det.ready("cam")
    with pytest.raises(ValueError, match="version 7"):
        det.restore("cam", {**fixture["state"], "v": 7})


def test_snapshot_is_compact_enough_for_a_kafka_message() -> None:
    # ViT-S/16 at 224 (384 dims, 14 x 14 patches) with the default bank: well under 1 MB of JSON.
    rng = np.random.default_rng(0)
    base = rng.normal(size=(14, 14, 384))
    det = AnomalyDetector(AnomalySettings(warmup_frames=10))
    for seq in range(60):
        p = base + 0.3 * rng.normal(size=base.shape)
        det.process(FrameEmbedding("cam", seq, seq / FPS, 0.0, "t", True, p.mean((0, 1)), p.mean((0, 1)), p))
    size = len(json.dumps(det.snapshot("cam")))
    assert 100_000 < size < 900_000


def test_restore_empty_resets_and_bad_dims_are_refused() -> None:
    det = detector()
    run(det, Scene().sequence(WARMUP))
    other = FrameEmbedding("cam", 99, 50.0, 0.0, "t", True, np.ones(8), np.ones(8), np.ones((GRID, GRID, 8)))
    with pytest.raises(ValueError, match="reset"):
        det.process(other)
    det.restore("cam", {})
    assert det.snapshot("cam") == {} and not det.ready("cam")


def test_coreset_covers_rare_patterns() -> None:
    # 1000 points in a tight cluster and 5 far outliers: a bank of 20 keeps every outlier.
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(1000, 16)) * 0.01, rng.normal(size=(5, 16)) * 5])
    chosen = set(greedy_coreset(x.astype(np.float32), 20).tolist())
    assert set(range(1000, 1005)) <= chosen
    assert len(chosen) == 20


def test_patch_features_pool_and_neighbourhood_shapes() -> None:
    p = np.random.default_rng(0).normal(size=(7, 9, 4))
    assert patch_features(p, pool=2).shape == (4, 5, 4)
    out = patch_features(p, neighbourhood=3)
    assert out.shape == (7, 9, 4)
    assert np.allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)


# --- a step of light, told from the pixels ---------------------------------------------------------


def _jpeg(img: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _street(seed: int) -> np.ndarray:
    """A textured 320x180 RGB picture (blocks of colour and noise), different for every seed."""
    rng = np.random.default_rng(seed)
    blocks = rng.uniform(40, 200, size=(9, 16, 3))
    img = np.kron(blocks, np.ones((20, 20, 1)))
    return img + rng.normal(0, 6, img.shape)


def test_photometric_step_is_a_gain_and_offset_of_the_same_picture() -> None:
    from dinostream.analytics.anomaly import photometric_step
    from dinostream.analytics.frame_motion import motion_image

    base = _street(1)
    before = _jpeg(base)
    assert photometric_step(before, _jpeg(base * 1.12 + 4))  # an exposure step
    assert photometric_step(before, _jpeg(base * 0.9))
    covered = base.copy()
    covered[:110, :150] = 15  # a hand over a third of the lens
    assert not photometric_step(before, _jpeg(covered))
    assert not photometric_step(before, _jpeg(_street(2)))  # the camera turned to another view
    assert not photometric_step(before, before)  # nothing changed: no step to explain
    assert not photometric_step(b"", before) and not photometric_step(before, b"not a jpeg")
    # Either side may come decoded already (the record's shared motion image): the same answers.
    decoded = motion_image(before)
    assert decoded is not None
    assert photometric_step(decoded, _jpeg(base * 1.12 + 4))
    assert photometric_step(before, motion_image(_jpeg(base * 0.9)))
    assert not photometric_step(decoded, _jpeg(_street(2))) and not photometric_step(decoded, decoded)


def test_a_global_step_that_the_pixels_show_is_light_is_followed_not_reported() -> None:
    """The same step of the global vector as `test_a_big_lighting_change_is_unusual_content`: with
    thumbnails showing the same picture brighter it is light (no event, and the next frames are not
    anomalous either); with thumbnails showing another picture it stays an anomaly."""
    scene = Scene(seed=2)
    base = _street(3)

    def framed(seq: int, light: float, picture: np.ndarray) -> FrameEmbedding:
        rec = scene.frame(seq, light=light)
        return FrameEmbedding(
            rec.stream, rec.seq, rec.pts, rec.ts, rec.model, True, rec.cls, rec.pooled, rec.patches, _jpeg(picture)
        )

    warm = [framed(seq, flicker(seq), base * (1 + 0.01 * flicker(seq))) for seq in range(WARMUP)]
    after = range(WARMUP, WARMUP + 6)
    brighter = detector()
    run(brighter, warm)
    events = run(brighter, [framed(seq, 1.0, base * 1.15 + 3) for seq in after])
    assert events == []
    fs = brighter.last_score("cam")
    assert fs is not None and fs.score < brighter.settings.threshold
    other = detector()
    run(other, warm)
    events = run(other, [framed(seq, 1.0, _street(4)) for seq in after])
    assert events and events[0].details["source"] == "global"


def test_a_lens_smeared_over_part_of_the_view_is_an_anomaly_though_the_features_hardly_move() -> None:
    """Untrained features hardly see a film or smear over part of the lens; the thumbnails' detail
    does. The same feature records with thumbnails under other light are normal, and without
    thumbnails there is no detail score at all."""
    from scipy import ndimage

    scene = Scene(seed=2)
    base = _street(3)

    def framed(seq: int, picture: np.ndarray | None) -> FrameEmbedding:
        rec = scene.frame(seq, light=flicker(seq))
        thumb = _jpeg(picture) if picture is not None else b""
        return FrameEmbedding(
            rec.stream, rec.seq, rec.pts, rec.ts, rec.model, True, rec.cls, rec.pooled, rec.patches, thumb
        )

    warm = [framed(seq, base * (1 + 0.01 * flicker(seq))) for seq in range(WARMUP)]
    after = range(WARMUP, WARMUP + 6)
    smeared = base.copy()
    smeared[:, :170] = ndimage.gaussian_filter(base[:, :170], (12, 12, 0))
    covered = detector()
    run(covered, warm)
    events = run(covered, [framed(seq, smeared) for seq in after])
    assert events and events[0].details["source"] == "view"
    assert events[0].details["detail_score"] > covered.settings.threshold
    restored = detector()  # the warm-up's detail is part of the saved model
    restored.restore("cam", json.loads(json.dumps(_warmed_state(warm))))
    assert [e.to_dict() for e in run(restored, [framed(seq, smeared) for seq in after])] == [
        e.to_dict() for e in events
    ]
    lit = detector()
    run(lit, warm)
    assert run(lit, [framed(seq, base * 0.8 + 5) for seq in after]) == []
    fs = lit.last_score("cam")
    assert fs is not None and fs.detail_score is not None and fs.detail_score < 0.5
    blind = detector()
    run(blind, [framed(seq, None) for seq in range(WARMUP + 2)])
    fs = blind.last_score("cam")
    assert fs is not None and fs.detail_score is None
    panorama = detector()  # a thumbnail too flat for the blocks: no detail score, no error
    run(panorama, [framed(seq, np.resize(base, (20, 320, 3))) for seq in range(WARMUP + 2)])
    fs = panorama.last_score("cam")
    assert fs is not None and fs.detail_score is None


def _warmed_state(warm: list[FrameEmbedding]) -> dict[str, object]:
    det = detector()
    run(det, warm)
    return det.snapshot("cam")


def test_a_whole_view_change_during_an_anomaly_at_one_place_is_another_event() -> None:
    """A thing stands out at one place, then the camera is turned: the first event closes and the
    turned view opens its own, instead of one event covering both."""
    scene, other = Scene(seed=0), Scene(seed=7)
    det = detector()
    run(det, scene.sequence(WARMUP))
    placed = [scene.frame(seq, region=TOP_RIGHT) for seq in range(WARMUP, WARMUP + 5)]
    turned = [other.frame(seq) for seq in range(WARMUP + 5, WARMUP + 10)]
    events = run(det, placed + turned)
    first = [e for e in events if e.id == events[0].id]
    assert first[0].details["source"] == "patch" and first[-1].status == "closed"
    assert first[-1].t_end == placed[-1].pts
    second = [e for e in events if e.id != events[0].id]
    assert second and second[0].status == "open" and second[0].details["source"] != "patch"
    assert second[0].t_start == turned[0].pts
