"""One retry policy for the hand-written retry and polling loops: how many tries, and the pause
before each next one (exponential, capped). Each loop keeps its own decision of what to retry."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries in all (None: until the caller's deadline); the pause after try k (k >= 1)
    is first_s * factor**(k-1), at most max_s."""

    first_s: float
    attempts: int | None = None
    factor: float = 2.0
    max_s: float = math.inf

    def pauses(self) -> Iterator[float]:
        """The pauses between tries: attempts - 1 of them (endless when attempts is None)."""
        pause, k = self.first_s, 1
        while self.attempts is None or k < self.attempts:
            yield min(pause, self.max_s)
            pause *= self.factor
            k += 1
