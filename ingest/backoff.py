"""Exponential backoff with jitter for reconnecting broken streams. Pure: no clock, no sleeping.

Jitter spreads the reconnects of cameras that dropped together (a switch reboot) so they do not
all hit the network or the server at the same instant ("Exponential Backoff And Jitter", AWS
Architecture Blog, 2015).

    backoff = Backoff(initial=1.0, maximum=30.0, multiplier=2.0, jitter="full")
    delay = backoff.next_delay()   # wait this long, then reconnect
    backoff.reset()                # the stream has been healthy for a while
"""

from __future__ import annotations

import random
from typing import Literal

Jitter = Literal["full", "decorrelated"]


class Backoff:
    """Delays that grow by `multiplier` from `initial` up to `maximum`, randomised by `jitter`.

    - "full": uniform(0, min(maximum, initial * multiplier**n)) for the n-th delay (n from 0).
    - "decorrelated": uniform(initial, previous * multiplier), capped at `maximum`; never shorter
      than `initial`, so a dead server is not hammered. Its mean grows by (1 + multiplier * previous) / 2
      per attempt: exponentially for a multiplier above 2 (AWS uses 3), only linearly at 2.

    `attempts` counts the delays handed out since the last `reset()`.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        multiplier: float = 2.0,
        jitter: Jitter = "full",
        rng: random.Random | None = None,
    ) -> None:
        if initial <= 0:
            raise ValueError(f"initial backoff must be positive, got {initial}")
        if maximum <= 0:
            raise ValueError(f"maximum backoff must be positive, got {maximum}")
        if multiplier < 1:
            raise ValueError(f"backoff multiplier must be at least 1, got {multiplier}")
        if jitter not in ("full", "decorrelated"):
            raise ValueError(f"unknown backoff jitter {jitter!r}: use 'full' or 'decorrelated'")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter: Jitter = jitter
        self.rng = rng or random.Random()
        self.attempts = 0
        self._last = initial  # the previous delay ("decorrelated" grows from it)

    def next_delay(self) -> float:
        """The next wait, in seconds; each call counts one attempt."""
        if self.jitter == "full":
            try:
                ceiling = self.initial * self.multiplier**self.attempts
            except OverflowError:  # a long outage: the cap applies anyway
                ceiling = self.maximum
            delay = self.rng.uniform(0.0, min(self.maximum, ceiling))
        else:
            low = min(self.initial, self.maximum)
            delay = min(self.maximum, self.rng.uniform(low, max(low, self._last * self.multiplier)))
            self._last = max(delay, low)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start again from `initial` (after a healthy period)."""
        self.attempts = 0
        self._last = self.initial
