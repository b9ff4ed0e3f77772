"""Masking shared by configuration output and log redaction, so a secret looks the same everywhere."""

from __future__ import annotations

import re

from buttress.errors import MASK

__all__ = ["MASK", "mask_url_password"]

# scheme://user:password@host -- the password may hold '@' (greedy up to the last one before the host),
# never whitespace, '/', '?' or '#', so "http://host:8080/path" is left alone.
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):(?P<password>[^\s/?#]+)@"
)


def mask_url_password(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` URL in ``text`` with the mask."""
    if "://" not in text:  # the common case costs one substring search
        return text
    return _URL_CREDENTIALS.sub(lambda match: f"{match['prefix']}:{MASK}@", text)
