"""Many values into a :class:`~buttress.observe.sketch.QuantileSketch` at once, at C speed.

``QuantileSketch.add`` is one Python call per value (a logarithm, a dict update, four compares). The query
tracker holds a fingerprint's durations and adds them in batches: the bucket keys come from ``map`` over
``math.log`` and ``math.ceil`` and are counted by :class:`collections.Counter` (C loops), put in a fresh
sketch and merged, so the result is the sketch ``add`` would have built.
"""

from __future__ import annotations

import collections
import math
import operator
from collections.abc import Sequence
from itertools import repeat

from buttress.observe.sketch import QuantileSketch

__all__ = ["add_many"]


def add_many(sketch: QuantileSketch, values: Sequence[int]) -> None:
    """Add ``values`` (durations in ns, at least 1) to ``sketch``."""
    if not values:
        return
    batch = QuantileSketch(sketch.relative_accuracy, max_bins=sketch.max_bins)
    keys = map(math.ceil, map(operator.mul, map(math.log, values), repeat(batch._multiplier)))
    batch.positive.update(collections.Counter(keys))
    batch.count = len(values)
    batch.sum = float(sum(values))
    batch.min = float(min(values))
    batch.max = float(max(values))
    sketch.merge(batch)
