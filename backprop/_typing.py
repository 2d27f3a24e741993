"""Type aliases shared by the network code.

The Array API standard has no static array type that NumPy, CuPy, torch and
array-api-strict all satisfy, so an array is ``Any`` here: the aliases say what a
value *means*, not what checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Array = Any
"""A device array of whichever library the model's backend uses."""

Backward = Callable[[Array], Array]
"""A layer's backward closure: dL/dY (N, out) -> dL/dX (N, in)."""
