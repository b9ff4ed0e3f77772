"""What counts as a secret and how it is masked, shared by config output, logs, errors and the ops server.

One definition, so a secret looks the same everywhere and a key masked in a log is masked in an error
report too. The key rules are described in :mod:`buttress.observe.logging`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from itertools import pairwise

from buttress.errors import MASK

__all__ = [
    "DESCRIPTIVE_LAST_WORDS",
    "KEY_QUALIFIERS",
    "MASK",
    "SENSITIVE_ENDINGS",
    "SENSITIVE_WORDS",
    "is_sensitive_key",
    "mask_url_password",
]

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


SENSITIVE_WORDS = frozenset(
    {
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "passphrase",
        "passwd",
        "password",
        "pwd",
        "secret",
        "secrets",
        "token",
        "tokens",
    }
)
SENSITIVE_ENDINGS = ("apikey", "cookie", "passwd", "password", "secret", "token")
KEY_QUALIFIERS = frozenset({"access", "api", "encryption", "master", "private", "secret", "signing"})
DESCRIPTIVE_LAST_WORDS = frozenset(
    {
        "at",
        "count",
        "enabled",
        "endpoint",
        "expires",
        "expiry",
        "field",
        "file",
        "id",
        "kind",
        "len",
        "length",
        "method",
        "name",
        "path",
        "policy",
        "required",
        "scheme",
        "size",
        "ttl",
        "type",
        "uri",
        "url",
    }
)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD_SEPARATORS = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    """Whether a value logged under ``key`` must be masked (rules in the module docstring)."""
    words = [word for word in _WORD_SEPARATORS.split(_CAMEL_BOUNDARY.sub("_", key).lower()) if word]
    if not words or words[-1] in DESCRIPTIVE_LAST_WORDS:
        return False
    if any(word in SENSITIVE_WORDS or word.endswith(SENSITIVE_ENDINGS) for word in words):
        return True
    return any(word == "key" and previous in KEY_QUALIFIERS for previous, word in pairwise(words))
