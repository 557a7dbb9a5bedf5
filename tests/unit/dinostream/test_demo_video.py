import av
import numpy as np
import pytest

from dinostream.demo_video import make_video

pytestmark = pytest.mark.timeout(30)


def _decode(path) -> tuple[av.video.stream.VideoStream, list[float], list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times, images = [], []
        for frame in container.decode(stream):
            times.append(float(frame.time))
            images.append(frame.to_ndarray(format="rgb24"))
        return stream, times, images


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize(
    ("shots", "shot_s", "fps", "cuts"),
    [(4, 3.0, 25, [3.0, 6.0, 9.0]), (3, 1.5, 10, [1.5, 3.0]), (1, 2.0, 25, [])],
    ids=["default", "half-seconds", "single-shot"],
)
def test_returns_cut_times_that_match_the_frames(tmp_path, shots, shot_s, fps, cuts):
    path = tmp_path / "demo.mp4"
    assert make_video(path, shots=shots, shot_s=shot_s, fps=fps) == pytest.approx(cuts)

    stream, times, images = _decode(path)
    assert len(times) == round(shots * shot_s * fps)
    assert times[-1] + 1 / fps == pytest.approx(shots * shot_s)
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert images[0].shape == (240, 320, 3)

    # Across a cut the picture changes completely; within a shot it moves a little.
    cut_frames = {round(c * fps) for c in cuts}
    within = [_mean_abs_diff(images[i - 1], images[i]) for i in range(1, len(images)) if i not in cut_frames]
    across = [_mean_abs_diff(images[i - 1], images[i]) for i in sorted(cut_frames)]
    assert 0 < max(within) < 15
    assert all(d > 30 for d in across), across
    assert sum(d == 0 for d in within) < len(within) / 2  # the camera pans: consecutive frames differ


def test_size_and_determinism(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    make_video(a, shots=2, shot_s=0.5, size=(256, 144), seed=3)
    make_video(b, shots=2, shot_s=0.5, size=(256, 144), seed=3)
    make_video(c, shots=2, shot_s=0.5, size=(256, 144), seed=4)

    _, _, images_a = _decode(a)
    _, _, images_b = _decode(b)
    _, _, images_c = _decode(c)
    assert images_a[0].shape == (144, 256, 3)
    assert all(np.array_equal(x, y) for x, y in zip(images_a, images_b, strict=True))
    assert _mean_abs_diff(images_a[0], images_c[0]) > 10


@pytest.mark.parametrize(
    "kwargs",
    [{"shots": 0}, {"size": (321, 240)}, {"fps": 0}, {"shot_s": 0.01, "fps": 10}],
    ids=["no-shots", "odd-width", "zero-fps", "shot-shorter-than-a-frame"],
)
def test_rejects_impossible_videos(tmp_path, kwargs):
    with pytest.raises(ValueError):
        make_video(tmp_path / "x.mp4", **kwargs)
