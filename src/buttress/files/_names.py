"""Original file names kept as safe metadata (the helper "types" replaces this first version)."""

from __future__ import annotations

import unicodedata

__all__ = ["extension", "safe_name"]


def safe_name(original: str | None, *, default: str = "file") -> str:
    """The base name of ``original`` with controls and path separators removed, at most 255 bytes."""
    if not original:
        return default
    base = original.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip(" .")
    while len(base.encode()) > 255:
        base = base[:-1]
    return base or default


def extension(name: str) -> str:
    """The lower-case last suffix of ``name`` without its dot ("" when there is none)."""
    stem, dot, suffix = name.rpartition(".")
    return suffix.lower() if dot and stem else ""
