"""What counts as a secret and how it is masked, shared by config output, logs, errors and the ops server.

One definition, so a secret looks the same everywhere and a key masked in a log is masked in an error
report too. The key rules are described in :mod:`buttress.observe.logging`. Free text is scrubbed by
:func:`scrub_text`: known secret values (:func:`secret_values_of` collects them from settings), URL
passwords, and credentials written as ``name=value`` (:func:`mask_credential_params`).
:func:`escape_control_characters` keeps a value from starting a new line where it is written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from itertools import pairwise
from urllib.parse import unquote

from buttress.errors import MASK, is_pydantic_secret

__all__ = [
    "CREDENTIAL_PARAMS",
    "DESCRIPTIVE_LAST_WORDS",
    "KEY_QUALIFIERS",
    "MASK",
    "MIN_SECRET_LENGTH",
    "SENSITIVE_ENDINGS",
    "SENSITIVE_WORDS",
    "escape_control_characters",
    "is_sensitive_key",
    "mask_credential_params",
    "mask_url_password",
    "scrub_text",
    "secret_values_of",
]

# scheme://user:password@host -- the password may hold '@' (greedy up to the last one before the host),
# never whitespace, '/', '?' or '#', so "http://host:8080/path" is left alone.
_URL_CREDENTIALS = re.compile(
    r"(?P<prefix>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*):(?P<password>[^\s/?#]+)@"
)


def mask_url_password(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` URL in ``text`` with the mask, and
    a URL's credential query parameters (``?sentinel_password=``, ``&password=``) too."""
    if "://" not in text:  # the common case costs one substring search
        return text
    text = _URL_CREDENTIALS.sub(lambda match: f"{match['prefix']}:{MASK}@", text)
    return mask_credential_params(text) if "?" in text else text


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


CREDENTIAL_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "api-key",
        "apikey",
        "auth",
        "client_secret",
        "code",
        "id_token",
        "jwt",
        "key",
        "passwd",
        "password",
        "pwd",
        "refresh_token",
        "secret",
        "session",
        "sig",
        "signature",
        "token",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-credential",
        "x-goog-signature",
    }
)
"""Query parameters whose value is masked wherever a URL is logged or reported (compared lower-cased).

Any parameter that :func:`is_sensitive_key` calls sensitive (``accessToken``, ``client-secret``...) is
masked too; the names here add the short ones that are credentials only inside a query string (``key``,
``code``, ``sig``, ``auth``) and the signed-URL parameters of S3 and GCS.
"""

# The value after "name=": a quoted string as a repr writes it, or a run up to whitespace, '&', ';',
# '#', '<', '>' or a quote.
_VALUE = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|[^\s&;#<>'\"]+")
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
_QUERY_SEPARATORS = frozenset("?&;")
_MAX_NAME = 64


def _is_credential(name: str, in_query: bool) -> bool:
    if not name or not (name[0].isalpha() or name[0] == "_"):
        return False
    return is_sensitive_key(name) or (in_query and name.lower() in CREDENTIAL_PARAMS)


def mask_credential_params(text: str) -> str:
    """Mask the value of credential ``name=value`` pairs in ``text``.

    In a query string (after ``?``, ``&`` or ``;``) a name of :data:`CREDENTIAL_PARAMS` or a sensitive
    key is masked; elsewhere in free text only a sensitive key (``password=``, ``api_key=``, ``token=``)
    is, so ``key=user:1`` in a cache message stays readable.
    """
    equals = text.find("=")
    if equals < 0:  # the common case costs one substring search
        return text
    pieces: list[str] = []
    done = 0
    while equals >= 0:
        # Walk back over the name (no regex: a scan from every word start costs far more per line).
        start = equals
        while start > 0 and equals - start < _MAX_NAME and text[start - 1] in _NAME_CHARS:
            start -= 1
        in_query = start > 0 and text[start - 1] in _QUERY_SEPARATORS
        value = _VALUE.match(text, equals + 1)
        if value is not None and start >= done and _is_credential(text[start:equals], in_query):
            pieces += (text[done : equals + 1], MASK)
            done = value.end()
            equals = text.find("=", done)
        else:
            equals = text.find("=", equals + 1)
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


MIN_SECRET_LENGTH = 4
"""Known secret values shorter than this are not searched for in free text: masking every ``ab`` in
every line would destroy the logs and protect nothing (a secret that short is guessable anyway)."""


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret value, URL password and credential ``name=value`` masked.

    ``secrets`` should be longest first, so a secret containing another is masked whole.
    """
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return mask_credential_params(mask_url_password(text))


def secret_values_of(settings: object) -> set[str]:
    """Every secret value in ``settings``: ``SecretStr``/``SecretBytes`` fields, plain strings under a
    sensitive name (:func:`is_sensitive_key`: ``api_token``, ``Authorization``), and URL passwords.

    Walks nested pydantic models, mappings and sequences (without importing pydantic: foundation stays
    light). A URL's password is collected as written and percent-decoded, since an error message may
    show either; a ``Bearer <token>`` value gives its token too. Values shorter than
    :data:`MIN_SECRET_LENGTH` are left out.
    """
    return {
        value for value in _secret_values(settings, 0, sensitive=False) if len(value) >= MIN_SECRET_LENGTH
    }


_MAX_DEPTH = 8


def _secret_values(value: object, depth: int, *, sensitive: bool) -> Iterator[str]:
    if depth > _MAX_DEPTH:
        return
    if is_pydantic_secret(value):
        secret = value.get_secret_value()  # type: ignore[attr-defined]
        text = secret.decode("utf-8", "replace") if isinstance(secret, bytes) else str(secret)
        yield from _secret_text(text)
    elif isinstance(value, str):
        yield from _secret_text(value) if sensitive else _url_passwords(value)
    elif isinstance(getattr(type(value), "model_fields", None), Mapping):  # a pydantic model
        for name in type(value).model_fields:  # type: ignore[attr-defined]
            yield from _secret_values(getattr(value, name, None), depth + 1, sensitive=is_sensitive_key(name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_values(
                item, depth + 1, sensitive=isinstance(key, str) and is_sensitive_key(key)
            )
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secret_values(item, depth + 1, sensitive=sensitive)


def _secret_text(text: str) -> Iterator[str]:
    """A secret string, the credential of an ``<scheme> <credential>`` header value, its URL passwords."""
    yield text
    scheme, _, credential = text.partition(" ")
    if credential and scheme.isalpha():
        yield credential.strip()
    yield from _url_passwords(text)


def _url_passwords(text: str) -> Iterator[str]:
    if "://" in text:
        for match in _URL_CREDENTIALS.finditer(text):
            yield match["password"]
            yield unquote(match["password"])


# C0 controls but tab, DEL, C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _ESCAPES.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def escape_control_characters(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with CR, LF and other control characters written as escapes (``\\r``, ``\\n``, ``\\x1b``).

    A value written into a log line can then neither start a forged line nor drive the terminal.
    ``keep_newlines`` keeps ``\\n`` (a rendered traceback is several lines by design).
    """
    if text.isprintable():  # the common case: one C-level scan, no regex
        return text
    return (_CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL).sub(_escaped, text)
