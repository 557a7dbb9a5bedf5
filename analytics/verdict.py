"""What a cosine similarity between two global embeddings says, in the words a user reads: the
cosine, its distance, a percentage, whether the two show one subject at a threshold, and how
sure that answer is (its margin from the threshold).

    >>> v = verdict(0.82, 0.6)
    >>> v.same_subject, v.confidence, v.percent
    (True, 'high', 82.0)

Confidence is the margin between the cosine and the threshold it was judged at: under
`CONFIDENCE_MARGINS["medium"]` (0.05) "low" (a small change of picture could flip the answer),
from there to `CONFIDENCE_MARGINS["high"]` (0.15) "medium", beyond it "high".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CONFIDENCE_MARGINS = {"medium": 0.05, "high": 0.15}


@dataclass(frozen=True)
class Verdict:
    cosine: float  # of the two unit embeddings, -1..1
    distance: float  # cosine distance, 1 - cosine: 0 (same direction) .. 2
    percent: float  # the cosine as a percentage, 0..100 (a negative cosine is 0 %)
    same_subject: bool  # cosine >= threshold
    threshold: float
    margin: float  # cosine - threshold
    confidence: str  # "low", "medium" or "high": how far the cosine is from the threshold

    def explanation(self) -> str:
        side = "at or above" if self.same_subject else "below"
        answer = "the same subject" if self.same_subject else "different subjects"
        return (
            f"cosine {self.cosine:.3f} is {abs(self.margin):.3f} {side} the same-subject threshold "
            f"{self.threshold:.2f}: {answer}, {self.confidence} confidence"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cosine": self.cosine,
            "distance": self.distance,
            "percent": self.percent,
            "same_subject": self.same_subject,
            "threshold": self.threshold,
            "margin": self.margin,
            "confidence": self.confidence,
            "confidence_margins": dict(CONFIDENCE_MARGINS),
            "explanation": self.explanation(),
        }


def verdict(cosine: float, threshold: float) -> Verdict:
    """The verdict on `cosine` (of unit vectors; clipped to -1..1) at `threshold`."""
    if not math.isfinite(cosine):
        raise ValueError(f"cosine must be a finite number, got {cosine}")
    c = min(1.0, max(-1.0, float(cosine)))
    margin = c - threshold
    if abs(margin) >= CONFIDENCE_MARGINS["high"]:
        confidence = "high"
    elif abs(margin) >= CONFIDENCE_MARGINS["medium"]:
        confidence = "medium"
    else:
        confidence = "low"
    return Verdict(
        cosine=c,
        distance=1.0 - c,
        percent=round(max(0.0, c) * 100.0, 2),
        same_subject=c >= threshold,
        threshold=threshold,
        margin=margin,
        confidence=confidence,
    )
