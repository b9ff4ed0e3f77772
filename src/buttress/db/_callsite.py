"""The user code's ``file:line`` that led to a statement, found by walking up past library frames.

Called only on the rare paths (a slow statement, a repeated one inside a scope), so a frame walk is
affordable there and costs nothing on the common path. Frames of SQLAlchemy, ``buttress.db``, greenlet,
asyncio and contextlib are library frames; whether a code object is one is decided once and remembered.
Under the async engines a statement runs in a greenlet whose stack ends at SQLAlchemy's spawn point; the
walk continues in the parent greenlet, where the awaiting coroutines (the user's among them) are.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from types import CodeType, FrameType
from typing import Final

import sqlalchemy

__all__ = ["call_site"]

_PACKAGES: Final = (sqlalchemy.__file__ or "", os.path.abspath(__file__), asyncio.__file__ or "")
_LIBRARY_PREFIXES: Final = (
    *(os.path.dirname(path) + os.sep for path in _PACKAGES),
    contextlib.__file__ or "contextlib.py",
    "<frozen ",
)
_library: dict[CodeType, bool] = {}
_MAX_CODES: Final = 10_000
UNKNOWN: Final = "<unknown>"


def _is_library(code: CodeType) -> bool:
    known = _library.get(code)
    if known is None:
        if len(_library) >= _MAX_CODES:
            _library.clear()
        filename = code.co_filename
        known = _library[code] = filename.startswith(_LIBRARY_PREFIXES) or "greenlet" in filename
    return known


def _parent_frame() -> FrameType | None:
    """The frame where the parent greenlet switched into this one, if running in a greenlet."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None:
        return None
    parent = greenlet.getcurrent().parent
    return None if parent is None else parent.gr_frame


def call_site(skip: int = 1) -> str:
    """``path:line`` of the innermost frame outside the libraries above ``skip`` frames, or ``<unknown>``."""
    frame: FrameType | None = sys._getframe(skip)
    jumped = False
    while True:
        while frame is not None:
            if not _is_library(frame.f_code):
                return f"{frame.f_code.co_filename}:{frame.f_lineno}"
            frame = frame.f_back
        if jumped:
            return UNKNOWN
        frame, jumped = _parent_frame(), True
        if frame is None:
            return UNKNOWN
