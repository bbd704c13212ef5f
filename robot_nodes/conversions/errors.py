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


def require_finite(field: str, values: np.ndarray | float) -> None:
    """Raises naming `field` (and the first bad row of a 2-D array) unless every value is finite."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return
    if values.ndim == 2:
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise MalformedMessageError(f"{field}[{row}] is not finite: {values[row].tolist()}")
    raise MalformedMessageError(f"{field} is not finite: {values.tolist()}")
