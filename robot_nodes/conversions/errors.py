"""The one error type every conversion raises for a message it cannot trust, and its checks."""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np


class MalformedMessageError(ValueError):
    """A received message that breaks its type's rules; the text names the field and the problem."""


@contextlib.contextmanager
def located_at(location: str) -> Iterator[None]:
    """Prefixes any MalformedMessageError raised inside with `location`, e.g. "objects[3]"."""
    try:
        yield
    except MalformedMessageError as error:
        raise MalformedMessageError(f"{location}: {error}") from error


LARGEST_MAGNITUDE = 1e12
"""Largest |value| a checked field may hold (10^12 m is far beyond any map, 10^12 m/s beyond any
speed): past it the squares and products the nodes compute overflow to inf and NaN."""


def require_finite(field: str, values: np.ndarray | float) -> None:
    """Raises naming `field` (and the first bad row of a 2-D array) unless every value is finite and
    within ±LARGEST_MAGNITUDE."""
    values = np.asarray(values, dtype=np.float64)
    for good, problem in ((np.isfinite(values), "is not finite"),
                          (np.abs(values) <= LARGEST_MAGNITUDE, f"is beyond ±{LARGEST_MAGNITUDE:g}")):
        if good.all():
            continue
        if values.ndim == 2:
            row = int(np.flatnonzero(~good.all(axis=1))[0])
            raise MalformedMessageError(f"{field}[{row}] {problem}: {values[row].tolist()}")
        raise MalformedMessageError(f"{field} {problem}: {values.tolist()}")
