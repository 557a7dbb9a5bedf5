"""Arrays in processor state: JSON-ready, compact and exact.

An array is saved as its little-endian bytes in base64 with its dtype and shape, about a fifth
of the size of a JSON list of floats and exactly the values it had (choose the dtype to save:
float16 for what the records carry as float16, int8 for quantised banks).

    >>> saved = encode_array(mean, "<f2")            # {"dtype": "<f2", "shape": [14, 14, 384], "b64": "..."}
    >>> decode_array(json.loads(json.dumps(saved))).shape
    (14, 14, 384)

`decode_array` also reads what earlier releases wrote: the background model's dtypes without a
byte order ("f2"), and scene-change state before its version 5, whose arrays were bare base64
strings of little-endian rows whose dtype and count the reader knew (`decode_rows`).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
from numpy.typing import DTypeLike


def _little_endian(dtype: DTypeLike) -> np.dtype[Any]:
    dt = np.dtype(dtype)
    return dt.newbyteorder("<") if dt.byteorder in ("=", ">") else dt


def encode_array(a: np.ndarray, dtype: DTypeLike | None = None) -> dict[str, Any]:
    """`a` as JSON: {"dtype", "shape", "b64"}, cast to `dtype` first when given (else its own)."""
    arr = np.asarray(a)
    le = _little_endian(arr.dtype if dtype is None else dtype)
    data = np.ascontiguousarray(arr, dtype=le)
    return {"dtype": le.str, "shape": list(data.shape), "b64": base64.b64encode(data.tobytes()).decode("ascii")}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    """What `encode_array` saved, as a writable array of the saved dtype. Raises ValueError when
    the bytes do not fit the dtype and shape (a damaged state)."""
    raw = base64.b64decode(d["b64"], validate=True)
    dt = _little_endian(d["dtype"])
    shape = tuple(int(n) for n in d["shape"])
    if len(raw) != dt.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"array state of {len(raw)} bytes does not hold {dt.str} {list(shape)}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def decode_rows(data: str, dtype: DTypeLike, n: int) -> np.ndarray:
    """Scene-change state before version 5: `n` equal rows of `dtype` as one bare base64 string
    of their little-endian bytes ("" for none). Returned as an (n, ...) float32 array, as that
    release read them."""
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    raw = np.frombuffer(base64.b64decode(data), dtype=_little_endian(dtype))
    return raw.reshape(n, -1).astype(np.float32)
