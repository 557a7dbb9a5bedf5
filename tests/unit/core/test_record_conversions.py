"""What the records convert to and from besides their wire bytes: the header-only view of a frame
record, the vector index payloads and the websocket JSON of an event."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable

import numpy as np
import pytest

from dinostream.core.records import (
    Box,
    Event,
    FrameEmbedding,
    FrameHeader,
    Heatmap,
    RecordError,
    event_id,
)
from tests.pictures import jpeg


def _rec(patches: tuple[int, int, int] = (4, 5, 16), thumbnail: bytes | None = None, seq: int = 3) -> FrameEmbedding:
    rng = np.random.default_rng(seq)
    return FrameEmbedding(
        stream="cam-1",
        seq=seq,
        pts=1.25,
        ts=1_700_000_000.5,
        model="dinov3-vits16",
        untrained=False,
        cls=rng.normal(size=16),
        pooled=rng.normal(size=16),
        patches=rng.normal(size=patches),
        thumbnail=jpeg(np.full((8, 8, 3), 200, dtype=np.uint8)) if thumbnail is None else thumbnail,
    )


def _first_wire_version_bytes() -> bytes:
    """A record as the first writers wrote it (no "pdim"), built byte by byte."""
    rng = np.random.default_rng(2)
    cls, pooled, patches = (rng.normal(size=s).astype("<f2") for s in ((8,), (8,), (2, 3, 8)))
    thumb = jpeg(np.zeros((8, 8, 3), dtype=np.uint8))
    header = json.dumps(
        {"stream": "cam", "seq": 1, "pts": 0.5, "ts": 1.0, "model": "m", "untrained": True, "dim": 8}
        | {"grid": [2, 3], "thumb": len(thumb)},
        separators=(",", ":"),
    ).encode()
    parts = (b"DSE\x01", struct.pack("<I", len(header)), header, cls.tobytes(), pooled.tobytes(), patches.tobytes())
    return b"".join(parts) + thumb


RECORDS: dict[str, Callable[[], bytes]] = {
    "plain": lambda: _rec().encode(),
    "pca-reduced-patches": lambda: _rec(patches=(3, 3, 4)).encode(),
    "no-thumbnail": lambda: _rec(thumbnail=b"").encode(),
    "first-wire-version": _first_wire_version_bytes,
}


# ---------- the header-only view ----------


@pytest.mark.parametrize("make", RECORDS.values(), ids=RECORDS.keys())
def test_the_header_view_reads_what_the_whole_decode_reads(make: Callable[[], bytes]) -> None:
    data = make()
    header = FrameHeader.decode(data)
    whole = FrameEmbedding.decode(data)

    assert header == whole.header
    assert header.thumbnail == whole.thumbnail and data.endswith(header.thumbnail)
    assert (header.dim, header.patch_dim, header.grid) == (whole.dim, whole.patch_dim, whole.patches.shape[:2])


def test_the_header_view_of_an_encoded_record_is_the_records_own() -> None:
    rec = _rec()
    header = FrameHeader.decode(rec.encode())
    assert header == rec.header
    assert (header.stream, header.seq, header.pts, header.ts, header.model, header.untrained) == (
        "cam-1",
        3,
        1.25,
        1_700_000_000.5,
        "dinov3-vits16",
        False,
    )
    assert header.thumbnail == rec.thumbnail and header.thumbnail.startswith(b"\xff\xd8")


def test_the_header_view_leaves_the_arrays_alone() -> None:
    """Arrays a whole decode refuses (NaN) do not stop the header view: it never reads them."""
    data = bytearray(_rec().encode())
    (n,) = struct.unpack_from("<I", data, 4)
    data[8 + n : 8 + n + 2] = np.array([np.nan], dtype="<f2").tobytes()  # the first CLS value
    with pytest.raises(RecordError, match="NaN"):
        FrameEmbedding.decode(bytes(data))
    assert FrameHeader.decode(bytes(data)) == _rec().header


def _forged(**changes: object) -> bytes:
    """A valid record whose JSON header is replaced: `changes` are merged into it (None drops a key)."""
    data = _rec().encode()
    (n,) = struct.unpack_from("<I", data, 4)
    header = {k: v for k, v in {**json.loads(data[8 : 8 + n]), **changes}.items() if v is not None}
    hb = json.dumps(header).encode()
    return data[:4] + struct.pack("<I", len(hb)) + hb + data[8 + n :]


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (_forged(grid="4x5"), "invalid grid"),
        (_forged(grid=[4]), "invalid grid"),
        (_forged(thumb=-1), "thumbnail length"),
        (_forged(dim="16"), "invalid dims"),
        (_forged(model=None), "lacks \\['model'\\]"),
        (_forged(stream="../etc"), "invalid stream id"),
        (_forged(seq=-2), "seq"),
        (b"DSE\x01" + struct.pack("<I", 2) + b"[]", "lacks"),
    ],
    ids=["grid-text", "grid-one-number", "negative-thumb", "dim-text", "no-model", "bad-stream", "bad-seq", "list"],
)
def test_a_malformed_header_is_a_record_error_for_both_decoders(data: bytes, needle: str) -> None:
    for decode in (FrameHeader.decode, FrameEmbedding.decode):
        with pytest.raises(RecordError, match=needle):
            decode(data)


# ---------- the vector index payloads ----------


def test_a_frame_index_payload_holds_its_fields_and_gives_its_thumbnail_back() -> None:
    rec = _rec()
    payload = rec.to_index_payload()

    assert {k: v for k, v in payload.items() if k != "thumb"} == {
        "stream": "cam-1",
        "seq": 3,
        "t": 1.25,
        "ts": 1_700_000_000.5,
        "model": "dinov3-vits16",
        "untrained": False,
    }
    stored = json.loads(json.dumps(payload))  # what a JSON payload store gives back
    assert FrameEmbedding.thumbnail_from_index_payload(stored) == rec.thumbnail
    assert FrameEmbedding.thumbnail_from_index_payload(_rec(thumbnail=b"").to_index_payload()) is None
    assert FrameEmbedding.thumbnail_from_index_payload(None) is None


def _event(**kw: object) -> Event:
    base: dict[str, object] = dict(
        id=event_id("cam-1", "anomaly", 7),
        type="anomaly",
        stream="cam-1",
        t=3.5,
        t_start=3.0,
        t_end=4.0,
        ts=1_700_000_003.5,
        score=0.8,
        frames=(6, 7),
        details={"distance": 0.42, "label": "bag"},
        status="open",
        boxes=(Box(0.1, 0.2, 0.3, 0.4, score=0.9, label="bag"),),
        heatmap=Heatmap(np.linspace(0, 1, 12).reshape(3, 4)),
    )
    base.update(kw)
    return Event(**base)  # type: ignore[arg-type]


def test_an_event_index_payload_round_trips() -> None:
    ev = _event()
    payload = ev.to_index_payload()
    assert {"stream", "type", "t", "ts"} <= payload.keys()  # what the index filters on
    assert Event.from_index_payload(json.loads(json.dumps(payload))) == ev


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"stream": "cam-1", "seq": 3, "t": 1.0, "ts": 2.0},
        {**_event().to_dict(), "frames": ["x"]},
        {**_event().to_dict(), "frames": 5},
        {**_event().to_dict(), "boxes": [{"x0": 0, "y0": 0, "x1": 1, "y1": 1, "colour": "red"}]},
        {**_event().to_dict(), "boxes": ["x"]},
    ],
    ids=["empty", "a-frame-payload", "frame-not-a-number", "frames-not-a-list", "box-extra-field", "box-not-object"],
)
def test_a_payload_that_holds_no_event_is_a_record_error(payload: dict[str, object]) -> None:
    with pytest.raises(RecordError):
        Event.from_index_payload(payload)


# ---------- the websocket JSON ----------


def test_an_events_json_is_compact_and_reads_back_as_the_event() -> None:
    ev = _event()
    text = ev.to_json()
    assert json.loads(text) == ev.to_dict()
    assert text == json.dumps(ev.to_dict(), separators=(",", ":"))  # compact, the same bytes as before
    assert Event.decode(text.encode()) == ev


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), object()], ids=["nan", "infinity", "not-json"])
def test_an_event_browsers_could_not_read_is_refused(bad: object) -> None:
    with pytest.raises(RecordError, match="not plain JSON"):
        _event(details={"distance": bad}).to_json()
