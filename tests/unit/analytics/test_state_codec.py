"""One array codec for processor state: exact round trips, and what earlier releases wrote still reads."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from dinostream.analytics.state_codec import decode_array, decode_rows, encode_array

ARRAYS = {
    "float16-grid": (np.arange(24, dtype=np.float16).reshape(2, 3, 4) / 7, None),
    "float32-as-float16": (np.linspace(-1, 1, 6, dtype=np.float32), "<f2"),
    "int8-bank": (np.array([[-128, 0, 127]], dtype=np.int8), None),
    "uint8-image": (np.array([[0, 255], [17, 3]], dtype=np.uint8), "|u1"),
    "big-endian-float64": (np.array([1.5, -2.25], dtype=">f8"), None),
    "empty-rows": (np.zeros((0, 0), dtype=np.float32), None),
}


@pytest.mark.parametrize(("array", "dtype"), ARRAYS.values(), ids=ARRAYS.keys())
def test_arrays_round_trip_exactly_through_json(array: np.ndarray, dtype: str | None) -> None:
    saved = json.loads(json.dumps(encode_array(array, dtype)))
    back = decode_array(saved)
    expected = array if dtype is None else array.astype(dtype)
    assert back.shape == expected.shape and back.dtype == expected.dtype.newbyteorder("<")
    assert np.array_equal(back, expected)
    assert saved["dtype"][0] in "<|"  # little-endian bytes whatever the machine
    back[...] = 0  # a writable copy, not a view of the decoded bytes


# Written by the release before this codec (ac29143), byte for byte.
LEGACY = {
    # regions.BackgroundModel and phases: the dtype without a byte order
    "background-f2": ({"shape": [2], "dtype": "f2", "b64": "ADwAQA=="}, np.array([1.0, 2.0], np.float16)),
    "phase-f4": ({"shape": [1], "dtype": "f4", "b64": "AADAPw=="}, np.array([1.5], np.float32)),
    # anomaly: numpy's dtype string
    "anomaly-i1": ({"dtype": "|i1", "shape": [1, 2], "b64": "gH8="}, np.array([[-128, 127]], np.int8)),
}


@pytest.mark.parametrize(("saved", "expected"), LEGACY.values(), ids=LEGACY.keys())
def test_reads_the_dicts_of_the_earlier_codecs(saved: dict[str, object], expected: np.ndarray) -> None:
    back = decode_array(saved)
    assert back.dtype == expected.dtype and np.array_equal(back, expected)


def test_reads_the_bare_rows_of_scene_change_before_version_5() -> None:
    rows = np.array([[1.0, 2.0], [3.0, 4.0]], dtype="<f2")
    data = base64.b64encode(rows.tobytes()).decode()
    back = decode_rows(data, np.float16, 2)
    assert back.dtype == np.float32 and np.array_equal(back, rows.astype(np.float32))
    assert decode_rows("", np.float32, 0).shape[0] == 0


def test_damaged_bytes_are_refused() -> None:
    saved = encode_array(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="does not hold"):
        decode_array({**saved, "shape": [5]})
    with pytest.raises(ValueError):
        decode_array({**saved, "b64": "not base64!"})
