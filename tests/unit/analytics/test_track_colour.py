"""A track's colours under its camera's white balance: the histogram two cameras agree on."""

from __future__ import annotations

import numpy as np
import pytest

from dinostream.analytics.track_colour import (
    COLOUR_BINS,
    KEEP_VIEWS,
    SAMPLES_PER_VIEW,
    CameraColour,
    add_view,
    box_samples,
    colour_histogram,
    colours_from_state,
    colours_to_state,
    signature,
    signature_dim,
    thumbnail_rgb,
)
from dinostream.core.records import Box
from tests.pictures import picture

CAST = np.array([1.35, 1.0, 0.7])  # the second camera's white balance and gain, per channel


def person(rng: np.random.Generator) -> np.ndarray:
    """An object's true colours: a top and a bottom garment, with shading (n, 3) in 0..1."""
    top, bottom = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    shade = rng.uniform(0.7, 1.0, (SAMPLES_PER_VIEW, 1))
    garments = np.where(np.arange(SAMPLES_PER_VIEW)[:, None] < SAMPLES_PER_VIEW // 2, top, bottom)
    return garments * shade


def seen(colours: np.ndarray, cast: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One view's samples of `colours` through a camera: its cast, sensor noise, 8 bits."""
    px = colours * cast * 180 + rng.normal(0, 3, colours.shape)
    return np.clip(px, 0, 255).round().astype(np.uint8)


def two_cameras(n: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], CameraColour, CameraColour]:
    """`n` objects passing a neutral camera and a cast one (three views each); the kept samples of
    each on each, and the cameras' references, learnt from the same objects passing."""
    rng = np.random.default_rng(seed)
    people = [person(rng) for _ in range(n)]
    kept: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    cams = {"a": CameraColour(), "b": CameraColour()}
    for name, cast in (("a", np.ones(3)), ("b", CAST)):
        for p in people:
            views = None
            for _ in range(3):
                view = seen(p, cast, rng)
                views = add_view(views, view)
                cams[name].add(view)
            assert views is not None
            kept[name].append(views)
    return kept["a"], kept["b"], cams["a"], cams["b"]


def affinities(a: list[np.ndarray], b: list[np.ndarray], ref_a: np.ndarray, ref_b: np.ndarray) -> np.ndarray:
    ha = np.stack([h for k in a if (h := colour_histogram(k, ref_a)) is not None])
    hb = np.stack([h for k in b if (h := colour_histogram(k, ref_b)) is not None])
    return ha @ hb.T


def test_an_object_on_two_cameras_of_different_white_balance_is_most_like_itself() -> None:
    a, b, cam_a, cam_b = two_cameras(12, seed=3)
    assert cam_a.reference is not None and cam_b.reference is not None
    normalised = affinities(a, b, cam_a.reference, cam_b.reference)
    assert (normalised.argmax(1) == np.arange(12)).all()
    # The negative check: compared as the cameras see them (one reference for both), the cast
    # moves objects onto others' colours, and the same object agrees less with itself.
    raw = affinities(a, b, cam_a.reference, cam_a.reference)
    assert (raw.argmax(1) != np.arange(12)).sum() >= 3
    assert np.diag(raw).mean() < np.diag(normalised).mean() - 0.2


def test_the_histogram_is_unit_and_needs_samples_and_a_reference() -> None:
    a, _, cam_a, _ = two_cameras(2, seed=1)
    h = colour_histogram(a[0], cam_a.reference)
    assert h is not None and h.shape == (COLOUR_BINS,) and np.linalg.norm(h) == pytest.approx(1.0, abs=1e-5)
    assert colour_histogram(None, cam_a.reference) is None
    assert colour_histogram(a[0], None) is None
    assert CameraColour().reference == pytest.approx([128, 128, 128])  # grey: nothing taken out yet


def test_box_samples_come_from_inside_the_box_less_its_margins() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    image[20:80, 50:150] = (200, 10, 10)  # the object; its box holds background at the edges
    box = Box(40 / 200, 10 / 100, 160 / 200, 90 / 100)
    samples = box_samples(image, box)
    assert 0 < len(samples) <= SAMPLES_PER_VIEW
    assert (samples == (200, 10, 10)).all()
    assert len(box_samples(image, Box(0.5, 0.5, 0.501, 0.501))) == 1  # a sub-pixel box: its pixel
    assert len(box_samples(image, Box(0.9, 0.9, 1.0, 1.0))) > 0  # at the frame's corner


def test_a_track_keeps_its_newest_views_each_weighing_the_same() -> None:
    kept = None
    for i in range(KEEP_VIEWS + 3):
        kept = add_view(kept, np.full((10 + i, 3), i, np.uint8))  # views of different sizes
    assert kept is not None and kept.shape == (KEEP_VIEWS, SAMPLES_PER_VIEW, 3)
    assert [int(v[0, 0]) for v in kept] == list(range(3, KEEP_VIEWS + 3))
    assert add_view(kept, np.zeros((0, 3), np.uint8)) is kept  # a view without samples: unchanged


def test_the_camera_reference_follows_a_change_of_light() -> None:
    cam = CameraColour()
    for _ in range(200):
        cam.add(np.full((KEEP_VIEWS, SAMPLES_PER_VIEW, 3), 100, np.uint8))  # a track's kept views
    assert cam.reference == pytest.approx([100, 100, 100], abs=5)  # the grey prior's pull is small by now
    for _ in range(400):
        cam.add(np.full((KEEP_VIEWS, SAMPLES_PER_VIEW, 3), 200, np.uint8))
    assert (cam.reference > 190).all()


def test_the_first_object_on_a_camera_is_not_taken_for_its_cast() -> None:
    """A camera that has seen one red coat does not yet see the world through it: its reference
    moves only partway (the grey prior), so the coat stays red."""
    cam = CameraColour()
    coat = np.zeros((KEEP_VIEWS, SAMPLES_PER_VIEW, 3), np.uint8)
    coat[...] = (200, 50, 50)
    cam.add(coat)
    ref = cam.reference
    assert ref[0] / ref[1] < 1.7  # the coat's own red/green is 4: under the reference still above 2.5
    red = colour_histogram(coat, ref)
    grey = colour_histogram(np.full_like(coat, 120), ref)
    assert red is not None and grey is not None
    assert float(red @ grey) < 0.1
    # The negative check: a reference made of the coat alone would turn it grey.
    alone = colour_histogram(coat, np.array([200.0, 50.0, 50.0]))
    neutral = colour_histogram(np.full_like(coat, 128), np.full(3, 128.0))
    assert alone is not None and neutral is not None and float(alone @ neutral) > 0.9


def test_colours_and_the_camera_survive_their_state() -> None:
    a, _, cam_a, _ = two_cameras(1, seed=2)
    back = colours_from_state(colours_to_state(a[0]))
    assert back is not None and np.array_equal(back, a[0])
    assert colours_from_state(colours_to_state(None)) is None
    cam = CameraColour.from_state(cam_a.to_state())
    assert cam.reference == pytest.approx(cam_a.reference, abs=1e-3)
    assert CameraColour.from_state(None).reference == pytest.approx(CameraColour().reference)


def test_thumbnails_decode_or_say_nothing() -> None:
    image = thumbnail_rgb(picture((10, 200, 30), (32, 24)))
    assert image is not None and image.shape == (24, 32, 3)
    assert thumbnail_rgb(b"") is None
    assert thumbnail_rgb(b"not a jpeg") is None


def test_a_signature_weighs_appearance_and_colours() -> None:
    rng = np.random.default_rng(0)
    a1, a2 = rng.normal(size=16), rng.normal(size=16)
    cos_a = float(a1 @ a2 / np.linalg.norm(a1) / np.linalg.norm(a2))
    h1, h2 = (np.abs(rng.normal(size=COLOUR_BINS)) for _ in range(2))
    h1, h2 = h1 / np.linalg.norm(h1), h2 / np.linalg.norm(h2)
    s1, s2 = signature(a1, h1, 0.3), signature(a2, h2, 0.3)
    assert s1.shape == (signature_dim(16),) and np.linalg.norm(s1) == pytest.approx(1.0, abs=1e-5)
    assert float(s1 @ s2) == pytest.approx(0.7 * cos_a + 0.3 * float(h1 @ h2), abs=1e-5)
    # Without colours (no thumbnails), or at weight 0, two tracks compare as their appearances do.
    n1, n2 = signature(a1, None, 0.3), signature(a2, h2, 0.0)
    assert not n1[16:].any() and float(n1 @ n2) == pytest.approx(cos_a, abs=1e-5)
