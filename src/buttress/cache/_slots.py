"""Where the Redis backend keeps tag sets on a Redis Cluster: one set per tag *and slot*, plus an index.

A script may only touch keys of one slot, and a tagged value must join its tag sets atomically, so on a
cluster a tag's set is split by the slot of its members: ``<prefix>:~tag:{<slot tag>}:<tag>``, where
the hash tag ``{<slot tag>}`` is a short string chosen to hash to exactly that slot (:func:`slot_tag`).
Values keep their keys (``<prefix>:<namespace>:<key>``, spread over the cluster as Redis hashes them).
The slots a tag has members in are listed in ``<prefix>:~tagslots:<tag>`` (a set of slot numbers, kept
at least as long as the per-slot sets): invalidating a tag reads it, then each listed set on its node.
A listed slot whose set has gone costs one empty ``SMEMBERS``; the list ends with the tag's longest TTL.
"""

from __future__ import annotations

import binascii
import functools
from typing import Final

__all__ = ["SLOTS", "key_slot", "slot_tag"]

SLOTS: Final = 16384


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """For each slot, the shortest decimal string whose CRC16 lands on it (about 170k tries, once)."""
    tags: list[str | None] = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        text = str(n)
        slot = binascii.crc_hqx(text.encode(), 0) % SLOTS  # Redis's CRC16 of a key without braces
        if tags[slot] is None:
            tags[slot] = text
            missing -= 1
        n += 1
    return tuple(tag for tag in tags if tag is not None)


def slot_tag(slot: int) -> str:
    """A hash tag (without braces) that puts a key on ``slot``."""
    return _slot_tags()[slot]


def key_slot(key: str) -> int:
    """The cluster slot of ``key``: CRC16 of its ``{hash tag}`` if it has a non-empty one, else of it all."""
    data = key.encode()
    start = data.find(b"{")
    if start >= 0:
        end = data.find(b"}", start + 1)
        if end > start + 1:
            data = data[start + 1 : end]
    return binascii.crc_hqx(data, 0) % SLOTS
