"""The `cctv` family: plans keep the rules (transitions inside the video, sorted, apart; distractors
clear of transitions; 40-90 s), are the same for a seed and differ across seeds, and the plans of a
few seeds hold every kind, size, frame rate and encoder; the guard tour keeps a view cut in its place
and a cut out of it; a video-loss screen is recorded as a fade; the recorder's clock ticks every
second and its camera name changes at transitions; a rendered video decodes to the planned frames,
with the on-screen display over every frame, the video-loss screen where the truth puts it and
infrared shots in grey; and a video is the same for a seed.

This family is held out: nothing here measures how visible a transition or a distractor is."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from generators.groundtruth import DISTRACTOR_KINDS, GroundTruth
from generators.scenecut_cctv import (
    CALM,
    CAMERA_MOVES,
    CCTV_EFFECTS,
    CCTV_JOINS,
    CCTV_TRANSITION_KINDS,
    CUT_KINDS,
    FRAME_RATES,
    PLACE_KINDS,
    SIZES,
    CctvPlan,
    Encoding,
    make_cctv_video,
    plan_cctv_video,
    true_time,
)
from tests.fresh_render import render_elsewhere

pytestmark = pytest.mark.timeout(180)

SIZE = (320, 240)
PLAN = [
    (None, "walker"),
    ("cut", "ptz_swing"),
    ("view_cut", "lights"),
    ("no_signal", "dropout"),
    ("dissolve", "insect"),
    ("fade", "day_night"),
]
PLANNED = {"size": SIZE, "fps": 8, "shot_s": (5.0, 5.0), "plan": PLAN, "style": CALM, "encoding": Encoding(crf=20)}
DRAWN = {"duration": 16.0, "size": (160, 90), "shot_s": (1.5, 6.0)}


def _decode(path: str | Path) -> tuple[np.ndarray, Fraction | None]:
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    return frames, rate


def _check_rules(truth: GroundTruth) -> None:
    starts = [t.start for t in truth.transitions]
    assert starts == sorted(starts) and len(starts) >= 1
    for a, b in zip(truth.transitions, truth.transitions[1:], strict=False):
        assert a.end <= b.start
    for t in truth.transitions:
        assert t.kind in CCTV_TRANSITION_KINDS and 0 < t.start <= t.end < truth.duration
        assert (t.start == t.end) == (t.kind in CUT_KINDS)
        assert true_time(t) == (t.start if t.kind in CUT_KINDS else (t.start + t.end) / 2)
    for d in truth.distractors:
        assert d.kind in DISTRACTOR_KINDS and d.kind in CCTV_EFFECTS.values()
        assert 0.5 - 1e-9 <= d.start < d.end <= truth.duration - 0.5 + 1e-9
        for t in truth.transitions:
            assert d.end + 1.0 <= t.start + 1e-9 or t.end + 1.0 <= d.start + 1e-9
    shots = [(s.start, s.end) for s in truth.shots]
    assert shots[0][0] == 0 and shots[-1][1] == pytest.approx(truth.duration)
    assert len(shots) == len(truth.transitions) + 1
    assert [(t.before, t.after) for t in truth.transitions] == [(k, k + 1) for k in range(len(shots) - 1)]


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed{s}")
def test_plans_keep_the_rules(seed: int) -> None:
    plan = plan_cctv_video(seed)
    truth = plan.truth(f"cctv-{seed}.mp4")
    assert 40 <= truth.duration <= 90 and truth.frames == round(truth.duration) * truth.fps
    _check_rules(truth)
    for shot in plan.shots[:-1]:  # the last shot takes what is left
        assert 1.5 * truth.fps <= shot.solo <= 10 * truth.fps
    json.dumps(truth.to_dict())


def test_plans_are_the_same_for_a_seed_and_differ_across_seeds() -> None:
    a, b = plan_cctv_video(3).truth("x.mp4"), plan_cctv_video(3).truth("x.mp4")
    assert a.to_dict() == b.to_dict()
    others = [plan_cctv_video(s).truth("x.mp4") for s in (4, 5, 9)]
    assert all((o.transitions, o.distractors) != (a.transitions, a.distractors) for o in others)


def test_a_few_seeds_hold_every_kind_size_rate_and_encoder() -> None:
    plans = [plan_cctv_video(seed) for seed in range(6)]
    transitions = Counter(t.kind for p in plans for t in p.transitions)
    distractors = Counter(d.kind for p in plans for d in p.distractors)
    assert set(transitions) == set(CCTV_TRANSITION_KINDS)
    assert transitions["cut"] > sum(transitions.values()) / 2  # the switcher's hard cuts are most
    assert 50 <= sum(transitions.values()) <= 70 and 30 <= sum(distractors.values()) <= 50
    assert set(distractors) == set(DISTRACTOR_KINDS)
    assert {p.size for p in plans} == set(SIZES) and {p.fps for p in plans} == set(FRAME_RATES)
    assert {w / h for w, h in SIZES} == {4 / 3, 16 / 9}
    assert {p.encoding.codec for p in plans} == {"libx264", "mpeg4"}
    assert all(p.encoding.gop is not None and p.fps <= p.encoding.gop <= min(300, 10 * p.fps) for p in plans)
    assert all(26 <= p.encoding.crf <= 40 for p in plans if p.encoding.codec == "libx264")
    assert {p.time for p in plans} == {"day", "dusk", "night"}
    assert {sh.join for p in plans for sh in p.shots[1:]} == set(CCTV_JOINS)
    assert {sh.start.mode for p in plans for sh in p.shots} == {"colour", "ir"}
    more = plans + [plan_cctv_video(seed) for seed in range(6, 12)]
    assert {fx.name for p in more for s in p.shots for fx in s.effects} == set(CCTV_EFFECTS)
    assert {pl.kind for p in more for pl in p.places} == set(PLACE_KINDS)
    assert {c.move for p in more for c in p.cameras} == set(CAMERA_MOVES)


def _shot_kinds(p: CctvPlan) -> list[tuple[str | None, int, int, str]]:
    return [(sh.join, sh.place, sh.camera, p.places[sh.place].kind) for sh in p.shots]


def test_the_tour_cuts_between_alike_places_and_view_cuts_stay() -> None:
    alike = revisits = 0
    for seed in range(6):
        p = plan_cctv_video(seed)
        shots = _shot_kinds(p)
        for (_, place0, cam0, kind0), (join, place1, cam1, kind1) in zip(shots, shots[1:], strict=False):
            assert cam1 != cam0 and p.cameras[cam1].place == place1
            assert (place1 == place0) == (join == "view_cut")  # another camera of the place, or another place
            alike += join == "cut" and kind1 == kind0  # e.g. from one corridor to another
        revisits += len(p.shots) - len({sh.camera for sh in p.shots})  # the tour comes round again
        names = [c.name for c in p.cameras]
        assert len(set(names)) == len(names) and len({c.channel for c in p.cameras}) == len(names)
    assert alike >= 3 and revisits >= 6


def test_a_video_loss_screen_is_recorded_as_a_fade() -> None:
    seen = 0
    for seed in range(6):
        p = plan_cctv_video(seed)
        screens = p.screen_frames()
        for t in p.transitions:
            if p.shots[t.after].join == "no_signal":
                seen += 1
                a, b = round(t.start * p.fps), round(t.end * p.fps)
                assert t.kind == "fade" and b - a >= 2 and set(range(a, b)) <= screens
                assert p.shots[t.before].last == a and p.shots[t.after].first == b  # cut to the screen and from it
                assert p.osd_shot(a) == t.after  # the switcher already names the new camera
        dropouts = sum(fx.b - fx.a for sh in p.shots for fx in sh.effects if fx.name == "dropout")
        joins = sum(round((t.end - t.start) * p.fps) for t in p.transitions if p.shots[t.after].join == "no_signal")
        assert len(screens) == dropouts + joins
    assert seen >= 3


def test_the_clock_ticks_every_second_and_the_name_changes_at_transitions() -> None:
    p = plan_cctv_video(5)
    jumps = {at for at, _ in p.clock_jumps}
    assert jumps and len(jumps) == sum(t.kind in ("dissolve", "fade") for t in p.transitions) - sum(
        sh.join == "no_signal" for sh in p.shots
    )
    for i in range(1, p.frames):
        step = p.clock(i) - p.clock(i - 1)
        if i in jumps:  # an export of another clip starts: its time
            assert step > timedelta(seconds=1)
        else:
            assert step == timedelta(seconds=1 if i % p.fps == 0 else 0)
    for t in p.transitions:
        a, b = round(t.start * p.fps), round(t.end * p.fps)
        at = a if t.kind in CUT_KINDS or p.shots[t.after].join == "no_signal" else (a + b) // 2
        assert p.osd_shot(at - 1) == t.before and p.osd_shot(at) == t.after


def test_rejects_bad_plans(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="first shot"):
        make_cctv_video(tmp_path / "x.mp4", plan=[("cut", None)])
    with pytest.raises(ValueError, match="unknown effect"):
        plan_cctv_video(plan=[(None, "meteor")])
    with pytest.raises(ValueError, match="unknown transition"):
        plan_cctv_video(plan=[(None, None), ("wipe", None)])
    with pytest.raises(ValueError, match="too short"):
        plan_cctv_video(plan=[(None, "headlights")], shot_s=(1.5, 1.5))
    with pytest.raises(ValueError, match="size"):
        plan_cctv_video(size=(321, 240))


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[GroundTruth, np.ndarray, Fraction | None]:
    path = tmp_path_factory.mktemp("cctv") / "plan.mp4"
    truth = make_cctv_video(path, seed=2, **PLANNED)  # type: ignore[arg-type]
    frames, rate = _decode(path)
    return truth, frames, rate


def test_the_plan_is_followed(planned: tuple[GroundTruth, np.ndarray, Fraction | None]) -> None:
    truth, frames, rate = planned
    assert [t.kind for t in truth.transitions] == ["cut", "view_cut", "fade", "dissolve", "fade"]
    assert [(d.kind, d.shot) for d in truth.distractors] == [
        ("occluder", 0),
        ("fast_pan", 1),
        ("drift", 2),
        ("flash", 3),
        ("occluder", 4),
        ("drift", 5),
    ]
    assert frames.shape == (truth.frames, SIZE[1], SIZE[0], 3) and rate == truth.fps == 8
    places = [s.image.split("-")[2] for s in truth.shots]
    assert places[2] == places[1] and len(set(places)) == 5  # a view cut stays in the place
    assert truth.to_dict() == plan_cctv_video(2, **PLANNED).truth(truth.path).to_dict()  # type: ignore[arg-type]
    p = plan_cctv_video(2, **PLANNED)  # type: ignore[arg-type]
    assert p.shots[4].start.mode == "ir" and p.shots[2].start.mode == "colour"  # a moth at night, lights in colour


def _text_corner(frame: np.ndarray, corner: str) -> np.ndarray:
    h, w = frame.shape[:2]
    rows = slice(0, h // 8) if corner.startswith("top") else slice(h - h // 8, h)
    cols = slice(0, w // 2) if corner.endswith("left") else slice(w // 2, w)
    return frame[rows, cols]


def test_the_display_is_over_every_frame_and_video_loss_is_a_flat_screen(
    planned: tuple[GroundTruth, np.ndarray, Fraction | None],
) -> None:
    truth, frames, _ = planned
    p = plan_cctv_video(2, **PLANNED)  # type: ignore[arg-type]
    grey = np.array([0.3, 0.59, 0.11], np.float32)
    text = float(np.dot(p.recorder.text, grey))
    for frame in frames:  # the time's digits are drawn as bright as the recorder's text, wherever the picture is
        corner = _text_corner(frame, p.recorder.time_corner).astype(np.float32) @ grey
        assert (np.abs(corner - text) < 30).sum() >= 20
    loss = np.array(p.recorder.loss_colour, np.float32)
    assert p.screen_frames()
    for i in sorted(p.screen_frames()):  # a flat screen: only the display draws bright text in its corners
        for where in (p.recorder.time_corner, p.recorder.name_corner):
            assert (np.abs(_text_corner(frames[i], where).astype(np.float32) @ grey - text) < 30).sum() >= 20
        middle = frames[i, SIZE[1] // 8 : -SIZE[1] // 8].astype(np.float32)
        assert (np.abs(middle - loss).max(axis=-1) < 30).mean() > 0.8  # the screen, not a picture
        assert (np.abs(middle - 235).max(axis=-1) < 40).sum() >= 20  # with its "VIDEO LOSS" text


def test_infrared_shots_are_grey(planned: tuple[GroundTruth, np.ndarray, Fraction | None]) -> None:
    truth, frames, _ = planned
    p = plan_cctv_video(2, **PLANNED)  # type: ignore[arg-type]

    def chroma(k: int) -> float:  # over the frames that show the shot alone
        a = round(truth.transitions[k - 1].end * truth.fps) if k else 0
        b = round(truth.transitions[k].start * truth.fps) if k < len(truth.transitions) else truth.frames
        picture = frames[a:b, SIZE[1] // 8 : -SIZE[1] // 8].astype(np.float32)
        return float(np.abs(picture - picture.mean(axis=-1, keepdims=True)).mean())

    ir = [k for k, sh in enumerate(p.shots) if sh.start.mode == "ir" and not sh.effects[0].name == "day_night"]
    colour = [k for k, sh in enumerate(p.shots) if sh.start.mode == "colour" and k not in (3, 5)]
    assert ir and colour
    assert max(chroma(k) for k in ir) < 0.5 < min(chroma(k) for k in colour)


@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("cctv") / "a.mp4"
    return path, make_cctv_video(path, seed=7, **DRAWN)  # type: ignore[arg-type]


def test_a_drawn_video_keeps_the_rules_and_decodes(drawn: tuple[Path, GroundTruth]) -> None:
    path, truth = drawn
    assert truth.to_dict() == plan_cctv_video(7, **DRAWN).truth(path).to_dict()  # type: ignore[arg-type]
    assert truth.fps in FRAME_RATES and truth.frames == round(16.0 * truth.fps)
    _check_rules(truth)
    frames, rate = _decode(path)
    assert frames.shape == (truth.frames, 90, 160, 3) and rate == truth.fps
    assert frames.std() > 10  # a picture, not a flat field


def _make_elsewhere(path: Path, seed: int) -> dict[str, object]:
    return render_elsewhere("generators.scenecut_cctv", "make_cctv_video", path, seed)


def test_deterministic_for_a_seed(drawn: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    path, truth = drawn
    a, b = _make_elsewhere(tmp_path / "a.mp4", 7), _make_elsewhere(tmp_path / "b.mp4", 7)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert {k: v for k, v in a.items() if k != "path"} == {k: v for k, v in b.items() if k != "path"}
    assert a["transitions"] == truth.to_dict()["transitions"] and a["distractors"] == truth.to_dict()["distractors"]
    # In this process too, the pictures are the same (up to the encoder's rounding).
    assert np.abs(_decode(path)[0].astype(np.float32) - _decode(tmp_path / "a.mp4")[0]).mean() < 1.0
    other = plan_cctv_video(8, **DRAWN)  # type: ignore[arg-type]
    assert (other.transitions, other.fps) != (truth.transitions, truth.fps)
