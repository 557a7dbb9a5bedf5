"""Thresholds calibrated from the data: how alike different objects look in this deployment.

Two tracks of one stream are, with few exceptions (an object that comes back), two different
objects; the similarities of their appearances are therefore a sample of what "not the same
object" looks like on these cameras, under their lighting, for their kind of objects. Each
stream keeps its own sample (`NonMatches`, saved with the stream's state); a link or a watchlist
match has to be more alike than nearly all of the samples of the streams a processor holds: the
threshold is their `QUANTILE`, never below the configured one (`link_threshold`,
`watch_threshold`), which also stands alone while there are fewer than `MIN_PAIRS`. Where the
objects are look-alikes (the same uniform, the same suitcase) the sample is high and so is the
threshold; where they are all different it stays at the configured floor.

    >>> null = NonMatches()
    >>> null.add(track.appearance)                   # each track that ended having been seen well
    >>> calibrated_threshold(0.7, [null, other])     # 0.7 until enough pairs, then the level
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import numpy as np

from dinostream.analytics.regions import unit_rows
from dinostream.analytics.state_codec import decode_array, encode_array

KEEP_TRACKS = 24  # appearances of the last tracks each new one is compared with
KEEP_PAIRS = 512  # similarities kept (the newest)
MIN_PAIRS = 10  # fewer and the configured threshold stands alone
QUANTILE = 0.95  # of the non-matching similarities, a match must reach


class NonMatches:
    """Similarities between the appearances of different tracks of one stream (see the module
    docstring), bounded: the last `keep_tracks` appearances and `keep_pairs` similarities."""

    def __init__(self, keep_tracks: int = KEEP_TRACKS, keep_pairs: int = KEEP_PAIRS) -> None:
        self._tracks: deque[np.ndarray] = deque(maxlen=keep_tracks)
        self._pairs: deque[float] = deque(maxlen=keep_pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, appearance: np.ndarray) -> None:
        """A track ended: its similarity to each kept appearance joins the sample, and it is kept."""
        # Kept as saved (float16, similarities to 4 places), so a restored stream goes on identically.
        v = unit_rows(np.asarray(appearance, dtype=np.float32).ravel()).astype(np.float16)
        if self._tracks and self._tracks[0].shape != v.shape:
            self._tracks.clear()  # another model's vectors: start again
            self._pairs.clear()
        for other in self._tracks:
            self._pairs.append(round(float(other.astype(np.float32) @ v.astype(np.float32)), 4))
        self._tracks.append(v)

    @property
    def pairs(self) -> list[float]:
        """The similarities kept, oldest first."""
        return list(self._pairs)

    def to_state(self) -> dict[str, Any]:
        tracks = np.stack(self._tracks) if self._tracks else np.zeros((0, 0), np.float16)
        return {"tracks": encode_array(tracks, "<f2"), "pairs": list(self._pairs)}

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> NonMatches:
        out = cls()
        if not state:
            return out
        tracks = decode_array(state["tracks"]).astype(np.float16)
        for row in tracks.reshape(-1, tracks.shape[-1]) if tracks.size else []:
            out._tracks.append(row)
        out._pairs.extend(float(p) for p in state.get("pairs", []))
        return out


def non_match_level(samples: Iterable[NonMatches], quantile: float = QUANTILE) -> float | None:
    """The `quantile` of the samples' similarities together, or None while they hold fewer than
    `MIN_PAIRS`."""
    pairs = [p for s in samples for p in s.pairs]
    if len(pairs) < MIN_PAIRS:
        return None
    return float(np.quantile(np.asarray(pairs, dtype=np.float64), quantile))


def calibrated_threshold(floor: float, samples: Iterable[NonMatches], quantile: float = QUANTILE) -> float:
    """The similarity a match needs: the level of the non-matching similarities, never below `floor`."""
    level = non_match_level(samples, quantile)
    return floor if level is None else max(floor, level)
