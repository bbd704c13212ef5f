"""Handing numpy data to uint8[] message fields without per-element work."""
from __future__ import annotations

import array

import numpy as np


def byte_array(values: np.ndarray) -> array.array:
    """The bytes of `values` in C order, as the array.array('B') that uint8[] fields store.

    rclpy keeps (or memcpy-copies) an array.array('B'); a numpy array would be converted element by element.
    """
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(values).reshape(-1).view(np.uint8))
    return data
