"""The asset store on disk: types told by content, size limits, retention and the store's capacity."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from dinostream.sinks.asset_store import AssetError, AssetStore, check_asset_id, sniff
from tests.pictures import picture

DAY = 86400.0


def store(tmp_path: Path, **kw: float) -> AssetStore:
    args = {"max_bytes": 10_000, "retention_days": 1.0, **kw}
    return AssetStore(tmp_path / "assets", **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "head, kind, fmt",
    [
        pytest.param(picture((1, 2, 3))[:64], "image", "jpeg", id="jpeg"),
        pytest.param(picture((1, 2, 3), fmt="PNG")[:64], "image", "png", id="png"),
        pytest.param(picture((1, 2, 3), fmt="WEBP")[:64], "image", "webp", id="webp"),
        pytest.param(b"\x00\x00\x00\x20ftypisom" + b"\x00" * 20, "video", "mp4", id="mp4"),
        pytest.param(b"\x1a\x45\xdf\xa3" + b"\x00" * 20, "video", "matroska", id="webm"),
        pytest.param(b"RIFF\x00\x00\x00\x00AVI LIST", "video", "avi", id="avi"),
    ],
)
def test_the_type_is_told_by_the_first_bytes(head: bytes, kind: str, fmt: str) -> None:
    what = sniff(head)
    assert what is not None and (what.kind, what.format) == (kind, fmt)


def test_text_and_still_image_containers_are_neither(tmp_path: Path) -> None:
    assert sniff(b"hello, this is text") is None
    assert sniff(b"\x00\x00\x00\x1cftypavif" + b"\x00" * 20) is None
    with pytest.raises(AssetError) as e:
        store(tmp_path).put(b"plain text named photo.jpg", filename="photo.jpg")
    assert e.value.code == "unsupported_asset"
    assert store(tmp_path).list() == [], "nothing kept of a refused upload"


def test_a_stored_picture_keeps_its_bytes_and_metadata(tmp_path: Path) -> None:
    s = store(tmp_path)
    data = picture((200, 10, 10), fmt="PNG")
    t0 = time.time()
    meta = s.put(data, filename="../../etc/red dot.png", info={"width": 64}, now=t0)
    assert check_asset_id(meta.id) == meta.id
    assert (meta.kind, meta.media_type, meta.bytes, meta.filename) == ("image", "image/png", len(data), "red dot.png")
    assert meta.expires_at == t0 + DAY and meta.info == {"width": 64}
    assert s.read(meta.id)[1] == data and s.path(meta.id).read_bytes() == data
    updated = s.update_info(meta.id, {"height": 48})
    assert updated.info == {"width": 64, "height": 48} and s.get(meta.id, now=t0 + 1) == updated
    assert s.delete(meta.id) is True and s.delete(meta.id) is False
    with pytest.raises(AssetError) as e:
        s.path(meta.id)
    assert e.value.code == "asset_not_found"


def test_too_large_and_empty_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    s = store(tmp_path, max_bytes=2048)
    big = picture((1, 2, 3), fmt="PNG") + b"\x00" * 4096
    for data, code in ((big, "asset_too_large"), (b"", "empty_asset")):
        with pytest.raises(AssetError) as e:
            s.put_stream(io.BytesIO(data))
        assert e.value.code == code
    assert s.list() == [] and list((tmp_path / "assets").iterdir()) == []


def test_assets_expire_after_their_retention(tmp_path: Path) -> None:
    s = store(tmp_path, retention_days=2.0)
    old = s.put(picture((1, 2, 3)), now=0.0)
    new = s.put(picture((4, 5, 6)), now=DAY)
    assert [m.id for m in s.list(now=DAY)] == [old.id, new.id]
    assert s.get(old.id, now=2 * DAY) is None, "an expired asset is gone when read"
    assert s.expire(now=2.5 * DAY) == [] and [m.id for m in s.list(now=2.5 * DAY)] == [new.id]
    assert s.expire(now=3 * DAY) == [new.id] and s.list(now=3 * DAY) == []


def test_the_oldest_make_room_when_the_store_is_full(tmp_path: Path) -> None:
    one = picture((1, 2, 3), fmt="PNG")
    s = store(tmp_path, max_total_bytes=2 * len(one) + 10)
    t0 = time.time()
    ids = [s.put(one, now=t0 + i).id for i in range(3)]
    assert [m.id for m in s.list(now=t0 + 3)] == ids[1:]
    assert s.stats()["count"] == 2 and s.stats()["images"] == 2


def test_an_id_names_no_other_path(tmp_path: Path) -> None:
    s = store(tmp_path)
    for bad in ("../x", "a_" + "0" * 23, "A_" + "0" * 24, "a_" + "g" * 24, ""):
        with pytest.raises(AssetError) as e:
            s.get(bad)
        assert e.value.code == "invalid_asset_id"
