"""The wire contract: round trips, compactness, and refusal of malformed records."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from dinostream.core.records import (
    Event,
    FrameEmbedding,
    FrameHeader,
    FramePreview,
    Jump,
    RecordError,
    event_id,
    frame_point_id,
)


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buf, format="JPEG")
    return buf.getvalue()


def _rec(**kw: object) -> FrameEmbedding:
    rng = np.random.default_rng(0)
    base = dict(
        stream="or-1",
        seq=3,
        pts=1.5,
        ts=1.7e9,
        model="m",
        untrained=False,
        cls=rng.normal(size=384),
        pooled=rng.normal(size=384),
        patches=rng.normal(size=(14, 14, 384)),
        thumbnail=_jpeg(),
    )
    base.update(kw)
    return FrameEmbedding(**base)  # type: ignore[arg-type]


def test_frame_round_trip_is_exact_and_compact() -> None:
    rec = _rec()
    data = rec.encode()
    back = FrameEmbedding.decode(data)
    assert (back.stream, back.seq, back.pts, back.ts, back.model, back.untrained) == ("or-1", 3, 1.5, 1.7e9, "m", False)
    assert back.patches.dtype == np.float16 and back.patches.shape == (14, 14, 384)
    assert np.array_equal(back.cls, rec.cls) and np.array_equal(back.patches, rec.patches)
    assert back.thumbnail == rec.thumbnail
    arrays = 2 * (384 * 2 + 14 * 14 * 384)
    assert len(data) - arrays - len(rec.thumbnail) < 300, "header must stay small"
    assert len(data) < 1_000_000, "ViT-S/16 at 224 fits Kafka's default message limit"


def test_header_only_decode() -> None:
    h = FrameHeader.decode(_rec().encode())
    assert h.stream == "or-1" and h.grid == (14, 14) and h.dim == 384


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"", "not a dinostream"),
        (b"XXXX" + b"\0" * 20, "not a dinostream"),
        (b"DSE\x09" + b"\0" * 20, "unsupported wire version"),
    ],
    ids=["empty", "wrong-magic", "future-version"],
)
def test_decode_refuses_garbage(data: bytes, needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        FrameEmbedding.decode(data)


def test_decode_refuses_truncated() -> None:
    with pytest.raises(RecordError, match="bytes, header says"):
        FrameEmbedding.decode(_rec().encode()[:-10])


@pytest.mark.parametrize(
    "kw,needle",
    [
        ({"stream": "bad id!"}, "invalid stream id"),
        ({"seq": -1}, "seq"),
        ({"pts": float("nan")}, "pts"),
        ({"cls": np.zeros(10)}, "dims disagree"),
        ({"patches": np.zeros((4, 384))}, "3 dimensions"),
        ({"cls": np.full(384, np.inf)}, "NaN or infinite"),
        ({"thumbnail": b"PNG..."}, "JPEG"),
    ],
    ids=["stream-id", "negative-seq", "nan-pts", "dim-mismatch", "flat-patches", "inf", "not-jpeg"],
)
def test_frame_validates_on_construction(kw: dict[str, object], needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        _rec(**kw)


def _grid_with(value: float, at: tuple[int, int, int], dtype: type = np.float16) -> np.ndarray:
    grid = np.random.default_rng(1).normal(size=(14, 14, 384)).astype(dtype)
    grid[at] = value
    return grid


@pytest.mark.parametrize(
    "patches",
    [
        _grid_with(np.nan, (13, 13, 383)),
        _grid_with(-np.inf, (0, 0, 0)),
        _grid_with(1e6, (7, 3, 100), np.float32),  # beyond fp16's range: inf once stored as fp16
    ],
    ids=["nan-last-cell", "minus-inf-first-cell", "fp32-overflow"],
)
def test_frame_refuses_non_finite_patches_anywhere(patches: np.ndarray) -> None:
    with pytest.raises(RecordError, match="patches contains NaN or infinite"):
        _rec(patches=patches)


def test_frame_keeps_extreme_finite_fp16_values() -> None:
    fp16 = np.finfo(np.float16)
    grid = _grid_with(float(fp16.max), (1, 2, 3))
    grid[4, 5, 6], grid[7, 8, 9] = -fp16.max, fp16.smallest_subnormal
    rec = FrameEmbedding.decode(_rec(patches=grid).encode())
    assert rec.patches[1, 2, 3] == fp16.max and rec.patches[4, 5, 6] == -fp16.max
    assert rec.patches[7, 8, 9] == fp16.smallest_subnormal
    assert rec.patches.flags.c_contiguous


def test_event_round_trip_and_validation() -> None:
    ev = Event(
        id=event_id("cam", "scene_change", 7),
        type="scene_change",
        stream="cam",
        t=3.0,
        t_start=2.5,
        t_end=3.0,
        ts=1.7e9,
        score=0.4,
        frames=(6, 7),
        details={"threshold": 0.1},
    )
    assert Event.decode(ev.encode()) == ev
    with pytest.raises(RecordError, match="unknown event type"):
        Event.from_dict({**ev.to_dict(), "type": "nope"})
    with pytest.raises(RecordError, match="ends"):
        Event.from_dict({**ev.to_dict(), "t_end": 1.0})
    with pytest.raises(RecordError, match="malformed event"):
        Event.from_dict({"id": "x"})
    with pytest.raises(RecordError, match="not JSON"):
        Event.decode(b"{")


def test_ids_are_deterministic_and_distinct() -> None:
    assert frame_point_id("a", 1) == frame_point_id("a", 1)
    assert len({frame_point_id("a", 1), frame_point_id("a", 2), frame_point_id("b", 1)}) == 3
    assert event_id("a", "scene_change", 1) != frame_point_id("a", 1)


def test_event_with_boxes_heatmap_and_status_round_trips() -> None:
    from dinostream.core.records import Box, Heatmap

    heat = Heatmap(np.linspace(0, 1, 14 * 14).reshape(14, 14))
    ev = Event(
        id="a",
        type="anomaly",
        stream="cam",
        t=1.0,
        t_start=1.0,
        t_end=2.0,
        ts=1.7e9,
        score=0.9,
        status="open",
        boxes=(Box(0.1, 0.2, 0.3, 0.4, score=0.8, label="bag"),),
        heatmap=heat,
    )
    back = Event.decode(ev.encode())
    assert back == ev and back.status == "open" and back.boxes[0].label == "bag"
    assert np.abs(back.heatmap.values - heat.values).max() <= 1 / 255  # type: ignore[union-attr]
    with pytest.raises(RecordError, match="box must satisfy"):
        Box(0.5, 0.0, 0.4, 1.0)
    with pytest.raises(RecordError, match="status"):
        Event.from_dict({**ev.to_dict(), "status": "maybe"})
    with pytest.raises(RecordError, match="malformed heatmap"):
        Event.from_dict({**ev.to_dict(), "heatmap": {"h": 2, "w": 2, "u8": "!!"}})


def test_pca_reduced_patch_grid_round_trips_with_its_own_dim() -> None:
    rng = np.random.default_rng(1)
    rec = _rec(patches=rng.normal(size=(7, 7, 64)))
    data = rec.encode()
    header = FrameHeader.decode(data)
    back = FrameEmbedding.decode(data)

    assert (header.dim, header.patch_dim, header.grid) == (384, 64, (7, 7))
    assert (back.dim, back.patch_dim, back.patches.shape) == (384, 64, (7, 7, 64))
    assert np.array_equal(back.patches, rec.patches) and np.array_equal(back.cls, rec.cls)
    assert len(data) < len(_rec().encode()) // 5  # the point of reducing it


def test_records_without_reduction_are_written_as_before() -> None:
    """No "pdim" in the header when patches have the CLS dim: older readers read new records."""
    data = _rec().encode()
    (n,) = struct.unpack_from("<I", data, 4)
    assert "pdim" not in json.loads(data[8 : 8 + n])
    assert FrameHeader.decode(data).patch_dim == 384  # filled in for readers


def test_old_records_without_pdim_still_decode() -> None:
    """A record as the first wire version wrote it (built here byte by byte) decodes unchanged."""
    rng = np.random.default_rng(2)
    cls, pooled, patches = (rng.normal(size=s).astype("<f2") for s in ((8,), (8,), (2, 3, 8)))
    header = json.dumps(
        {
            "stream": "cam",
            "seq": 1,
            "pts": 0.5,
            "ts": 1.0,
            "model": "m",
            "untrained": True,
            "dim": 8,
            "grid": [2, 3],
            "thumb": 0,
        },
        separators=(",", ":"),
    ).encode()
    data = b"DSE\x01" + struct.pack("<I", len(header)) + header + cls.tobytes() + pooled.tobytes() + patches.tobytes()

    back = FrameEmbedding.decode(data)
    assert back.patch_dim == back.dim == 8 and np.array_equal(back.patches, patches)
    assert back.encode() == data


@pytest.mark.parametrize(
    ("patches", "needle"),
    [(np.zeros((2, 2, 385)), "dims disagree"), (np.zeros((2, 2, 0)), "dims disagree")],
    ids=["patch-dim-above-cls-dim", "empty-patch-vectors"],
)
def test_patch_dim_must_be_between_one_and_the_cls_dim(patches: np.ndarray, needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        _rec(patches=patches)


def test_header_with_a_bad_pdim_is_refused() -> None:
    data = _rec(patches=np.zeros((2, 2, 64))).encode()
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8 : 8 + n])
    header["pdim"] = 500
    hb = json.dumps(header, separators=(",", ":")).encode()
    forged = data[:4] + struct.pack("<I", len(hb)) + hb + data[8 + n :]
    with pytest.raises(RecordError, match="invalid dims"):
        FrameEmbedding.decode(forged)


def test_a_jump_round_trips_in_the_header_and_is_left_out_when_unknown() -> None:
    rec = _rec(jump=Jump(1.24, 57.5, 3.25))
    data = rec.encode()
    back = FrameEmbedding.decode(data)
    assert back.jump == Jump(1.24, 57.5, 3.25)
    assert FrameHeader.decode(data) == rec.header and rec.header.jump == back.jump
    assert back.encode() == data
    plain = _rec().encode()
    (n,) = struct.unpack_from("<I", plain, 4)
    assert "jump" not in json.loads(plain[8 : 8 + n])  # written as before: older readers read it
    assert FrameEmbedding.decode(plain).jump is None


@pytest.mark.parametrize(
    ("jump", "needle"),
    [
        (Jump(1.6, 1.0), "at or before the frame's pts"),
        ((1.0, 2.0, 0.0), "must be a Jump"),
    ],
    ids=["after-the-frame", "not-a-jump"],
)
def test_a_jump_must_be_one_before_its_frame(jump: object, needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        _rec(jump=jump)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ((float("nan"), 1.0, 0.0), "jump t must be a finite number"),
        ((0.5, float("inf"), 0.0), "jump size must be a finite number"),
        ((0.5, 1.0, 2.0), "0 <= runner_up <= size"),
        ((0.5, 1.0, -1.0), "0 <= runner_up <= size"),
        ((0.5, True, 0.0), "jump size must be a finite number"),
    ],
)
def test_jump_fields_are_checked(fields: tuple[float, float, float], needle: str) -> None:
    with pytest.raises(RecordError, match=needle):
        Jump(*fields)


@pytest.mark.parametrize("bad", [[1.0, 2.0], "x", [1.0, "2", 0.0], {"t": 1}])
def test_a_forged_jump_in_the_header_is_refused(bad: object) -> None:
    data = _rec(jump=Jump(1.0, 2.0)).encode()
    (n,) = struct.unpack_from("<I", data, 4)
    header = json.loads(data[8 : 8 + n])
    header["jump"] = bad
    hb = json.dumps(header, separators=(",", ":")).encode()
    forged = data[:4] + struct.pack("<I", len(hb)) + hb + data[8 + n :]
    with pytest.raises(RecordError, match="jump"):
        FrameEmbedding.decode(forged)
    with pytest.raises(RecordError, match="jump"):
        FrameHeader.decode(forged)


def test_jumps_of_consecutive_spans_combine_exactly() -> None:
    """The largest step of two spans is the larger of their largest; the runner-up is the larger
    of the other span's largest and the winner's runner-up."""
    a, b = Jump(0.3, 10.0, 2.0), Jump(0.7, 40.0, 5.0)
    assert a.then(b) == Jump(0.7, 40.0, 10.0)
    assert b.then(Jump(1.1, 3.0, 1.0)) == Jump(0.7, 40.0, 5.0)
    assert a.then(None) is None
    assert Jump.over([a, b, Jump(1.1, 3.0, 1.0)]) == Jump(0.7, 40.0, 10.0)
    assert Jump.over([a, None, b]) is None and Jump.over([]) is None
    assert Jump.over([a]) == a
    assert Jump(0.7, 40.0, 10.0).dominates(2.0) and not Jump(0.7, 40.0, 25.0).dominates(2.0)
    assert not Jump(0.7, 0.0, 0.0).dominates(2.0)  # no step at all


def test_float_and_unit_patches_are_exact_shared_and_read_only() -> None:
    """What several processors read of a frame (the float32 grid, its unit vectors) is computed once
    per record, equals what each computed on its own, and cannot be changed by one of them."""
    from dinostream.analytics.regions import unit_rows

    patches = np.random.default_rng(1).normal(size=(14, 14, 384)).astype(np.float16)
    patches[0, 0] = 0  # a zero vector stays zero
    patches[0, 1, :3] = [np.finfo(np.float16).max, -np.finfo(np.float16).tiny / 4, -0.0]  # max, subnormal, -0
    rec = FrameEmbedding.decode(_rec(patches=patches).encode())
    assert rec.patches_f32.dtype == np.float32
    assert np.array_equal(rec.patches_f32, rec.patches.astype(np.float32))
    assert np.signbit(rec.patches_f32[0, 1, 2])
    assert np.array_equal(rec.unit_patches, unit_rows(rec.patches)) and not rec.unit_patches[0, 0].any()
    assert rec.patches_f32 is rec.patches_f32 and rec.unit_patches is rec.unit_patches
    for shared in (rec.patches_f32, rec.unit_patches):
        with pytest.raises(ValueError, match="read-only"):
            shared[0, 0, 0] = 1.0


def test_derived_work_is_computed_once_per_record_and_is_not_part_of_it() -> None:
    calls: list[int] = []

    def thumb_size(r: FrameEmbedding) -> int:
        calls.append(r.seq)
        return len(r.thumbnail)

    rec = _rec()
    assert rec.derived(thumb_size) == rec.derived(thumb_size) == len(rec.thumbnail)
    assert calls == [3]
    assert rec.derived(lambda r: r.seq) == 3  # another function is computed on its own
    other = _rec()  # another record of the same frame computes its own
    assert other.derived(thumb_size) == len(rec.thumbnail) and calls == [3, 3]
    assert rec.encode() == other.encode() == _rec().encode()


def test_preview_round_trip_is_small_and_names_the_record() -> None:
    rec = _rec()
    p = rec.preview(3, 12345)
    data = p.encode()
    back = FramePreview.decode(data)
    assert back == p and back.at == (3, 12345) and back.key == rec.key
    assert (back.stream, back.seq, back.pts, back.ts, back.model, back.untrained) == ("or-1", 3, 1.5, 1.7e9, "m", False)
    assert back.thumbnail == rec.thumbnail
    assert len(data) - len(rec.thumbnail) < 200 and len(data) * 50 < len(rec.encode())


@pytest.mark.parametrize(
    "data,needle",
    [
        (b"", "not a dinostream frame preview"),
        (_rec().encode(), "not a dinostream frame preview"),  # a whole record is not a preview
        (b"DSP\x09" + b"\0" * 20, "unsupported wire version"),
        (b"DSP\x01" + struct.pack("<I", 99) + b"{}", "shorter than its 99-byte header"),
        (b"DSP\x01" + struct.pack("<I", 2) + b"{]", "not JSON"),
        (b"DSP\x01" + struct.pack("<I", 2) + b"{}", "lacks ['at', 'model'"),
    ],
    ids=["empty", "whole-record", "future-version", "truncated", "not-json", "missing-fields"],
)
def test_preview_decode_refuses_garbage(data: bytes, needle: str) -> None:
    with pytest.raises(RecordError, match=needle.replace("[", "\\[")):
        FramePreview.decode(data)


@pytest.mark.parametrize(
    "at,needle",
    [([1], "invalid position"), ([-1, 0], "partition and offset >= 0"), ([0, 1.5], "partition and offset >= 0")],
)
def test_preview_with_a_bad_position_is_refused(at: list[object], needle: str) -> None:
    h = {"stream": "a", "seq": 0, "pts": 0.0, "ts": 0.0, "model": "m", "untrained": False, "at": at}
    hb = json.dumps(h).encode()
    with pytest.raises(RecordError, match=needle):
        FramePreview.decode(b"DSP\x01" + struct.pack("<I", len(hb)) + hb)
