"""How values are described and bounded, for the recipe's tables and sd-scripts' options alike.

``describe`` names a TOML value in an error message; ``Domain`` is the range a number must lie in,
declared once per key (swimlatent_wrap.sdscripts.domains for sd-scripts' options, the recipe's
table declarations for the wrapper's own keys) and checked by `swimlatent validate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def describe(value: Any) -> str:
    """How a TOML value reads in an error message: its TOML type and the value itself."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a float ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"{type(value).__name__} ({value!r})"


def not_finite(value: Any) -> str | None:
    """Why a number is refused outright: NaN and the infinities are nobody's setting."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"must be a finite number, got {value!r}"
    return None


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Domain:
    """The numbers a key accepts: ``low``/``high`` bounds (None = unbounded), each inclusive unless
    ``low_open``/``high_open``. Called with a value, returns None or the message naming the range."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""  # what the bound means, said after the range

    def __call__(self, value: Any) -> str | None:
        if isinstance(value, list):
            for index, item in enumerate(value, 1):
                problem = self(item)
                if problem:
                    return f"item {index}: {problem}"
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None  # a type error is reported by the type check
        if (problem := not_finite(value)) is not None:
            return problem
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if below or above:
            return f"must be {self.text()}, got {_number(value)}" + (f" ({self.why})" if self.why else "")
        return None

    def text(self) -> str:
        """The range in words: "1 or more", "greater than 0", "between 0 and 1", "in (0, 1]"."""
        low, high = self.low, self.high
        if low is not None and high is not None:
            if not self.low_open and not self.high_open:
                return f"between {_number(low)} and {_number(high)}"
            return f"in {'(' if self.low_open else '['}{_number(low)}, {_number(high)}{')' if self.high_open else ']'}"
        if low is not None:
            return f"greater than {_number(low)}" if self.low_open else f"{_number(low)} or more"
        if high is not None:
            return f"less than {_number(high)}" if self.high_open else f"{_number(high)} or less"
        return "a finite number"


POSITIVE = Domain(0, low_open=True)
NON_NEGATIVE = Domain(0)
AT_LEAST_1 = Domain(1)
PROBABILITY = Domain(0, 1)
SHARE = Domain(0, 1, low_open=True)
FINITE = Domain()
