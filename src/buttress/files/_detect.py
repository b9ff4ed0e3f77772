"""Types by content: what the first bytes of a file are, and whether that may be stored.

python-magic over the system's libmagic is the detector (99% on the issue's corpus); libmagic's module
functions share one handle and are not thread-safe (python-magic#11, #85), so each detector owns one
``magic.Magic`` and calls it under its own lock. Where libmagic cannot be loaded, the pure-Python
``filetype`` package takes over, with :func:`~buttress.files._sniff.sniff_text` for the text types it
does not know. Answers of both are canonicalised (:mod:`buttress.files._typenames`) and refined
(:mod:`buttress.files._sniff`) the same way.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import Any, Literal

from buttress._extras import require
from buttress.errors import FileTypeRejected, ValidationError
from buttress.files._names import extension, safe_name
from buttress.files._sniff import refine, sniff_binary, sniff_text
from buttress.files._typenames import (
    EMPTY,
    OCTET_STREAM,
    canonical,
    compatible,
    is_dangerous,
    is_data_text,
    type_of_extension,
)

__all__ = ["HEAD_SIZE", "Engine", "Reason", "TypeDetector", "validate_allowed"]

HEAD_SIZE = 8192
"""How many first bytes decide a type: libmagic's own tests rarely look further, and it is cheap."""

Engine = Literal["auto", "libmagic", "filetype"]
Reason = Literal["not_allowed", "dangerous", "extension_mismatch", "declared_mismatch"]

_NAME = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_PATTERN = re.compile(rf"{_NAME}/(?:{_NAME}|\*)|\*/\*")
# Markup or server code inside a media file: the polyglot that an image check alone lets through (a GIF
# header, then <?php ...; a PNG text chunk holding <script>). Each marker is five or more bytes: the first
# 8 KiB of random-looking compressed data match one about once in five million files.
_EMBEDDED_CODE = re.compile(rb"<\?php|<script|<html|<iframe|<!doctype html|<body[\s>]", re.IGNORECASE)
_MEDIA = ("image/", "audio/", "video/", "font/")


class TypeDetector:
    """Detects a file's type from its first bytes and checks it against an allow-list, name and claim.

    ``engine="auto"`` uses libmagic and falls back to filetype when libmagic (the Debian package
    libmagic1, or python-magic) is missing; ``"libmagic"`` or ``"filetype"`` insists on one (a missing
    one raises ``MissingExtra``/``ImportError``). One detector is safe to share between threads.
    """

    def __init__(self, engine: Engine = "auto") -> None:
        if engine not in ("auto", "libmagic", "filetype"):
            raise ValidationError(
                f"engine={engine!r} is not a detector; use 'auto', 'libmagic' or 'filetype'", field="engine"
            )
        self._lock = threading.Lock()
        self._magic: Any = None
        self._magic_error: type[Exception] = Exception
        self._filetype: Any = None
        if engine != "filetype":
            self._magic = _open_libmagic(required=engine == "libmagic")
        if self._magic is None:
            self._filetype = require("filetype", "files", "file type detection")
            self._version = f"filetype {getattr(self._filetype, '__version__', '?')}"
        else:
            magic = require("magic", "files")
            self._magic_error = magic.MagicException
            number = magic.version() if hasattr(magic, "version") else 0
            self._version = f"libmagic {number // 100}.{number % 100:02d}" if number else "libmagic"

    @property
    def engine(self) -> Literal["libmagic", "filetype"]:
        """Which detector answers."""
        return "libmagic" if self._magic is not None else "filetype"

    @property
    def version(self) -> str:
        """The detector and its version, for ``info()`` and logs (``libmagic 544``, ``filetype 1.2.0``)."""
        return self._version

    def detect(self, head: bytes) -> str:
        """The canonical content type of a file that starts with ``head`` (its first :data:`HEAD_SIZE` bytes).

        Never raises for content: unknown bytes are ``application/octet-stream``. An empty file is
        ``application/x-empty``, a type of its own: it holds nothing to run or render, so it passes an
        empty allow-list and skips the name and declared-type checks, but an allow-list must name it (or
        ``application/*``) to accept it, since an empty "image" is no image.
        """
        head = bytes(head[:HEAD_SIZE])
        if not head:
            return EMPTY
        found: str | None = None
        if self._magic is not None:
            try:
                with self._lock:
                    found = self._magic.from_buffer(head)
            except self._magic_error:
                found = None  # libmagic gave up on these bytes: ask the fallback's rules instead
        if found is None:
            found = self._fallback(head)
        return refine(canonical(found), head)

    def _fallback(self, head: bytes) -> str:
        if self._filetype is None:
            self._filetype = require("filetype", "files", "file type detection")
        try:
            found: str | None = self._filetype.guess_mime(head)
        except Exception:  # noqa: BLE001 - a pure-Python parser of untrusted bytes: no answer, not a crash
            found = None
        return sniff_binary(head, found) or sniff_text(head) or OCTET_STREAM

    def check(self, head: bytes, *, name: str | None, declared: str | None, allowed: Sequence[str]) -> str:
        """The detected type of ``head``, if it may be stored; else ``FileTypeRejected`` saying why.

        In order: a dangerous type (``DANGEROUS``) must be named exactly in ``allowed`` ("dangerous");
        a non-empty ``allowed`` must match it exactly or by ``major/*`` ("not_allowed"); a media file must
        not carry markup or PHP in its first bytes ("dangerous"); the last extension of ``name`` must
        agree with the content, an unknown extension being fine ("extension_mismatch"); a ``declared``
        Content-Type other than empty or ``application/octet-stream`` must agree too
        ("declared_mismatch"). The error's context holds ``detected``, ``reason`` and ``allowed``, plus
        the ``extension``'s or the ``declared`` type on a mismatch; its message says what was found and
        what is allowed. ``allowed`` is validated as :func:`validate_allowed` does (``ValidationError``).
        """
        exact, majors = _compiled(allowed)
        head = bytes(head[:HEAD_SIZE])
        detected = _refined(self.detect(head), name, declared)
        listed = [*exact, *(f"{major}/*" for major in majors)]
        context: dict[str, Any] = {"detected": detected, "allowed": listed}
        shown = ", ".join(listed) or "any type but executables and scripts"
        if is_dangerous(detected) and detected not in exact:
            raise _reject(
                f"the content is {detected}, a type that can run code when opened or served; it is accepted "
                f"only where the allowed types name it exactly (a wildcard never does); allowed: {shown}",
                "dangerous",
                context,
            )
        if listed and not _matches(detected, exact, majors):
            raise _reject(
                f"the content is {detected}, which is not allowed here; allowed: {shown}",
                "not_allowed",
                context,
            )
        if detected == EMPTY:
            return detected
        if detected.startswith(_MEDIA) and (found := _EMBEDDED_CODE.search(head)) is not None:
            marker = found.group().decode("ascii", errors="replace")
            raise _reject(
                f"the content is {detected} but carries {marker!r} markup in its first bytes (a polyglot a "
                "server could run or a browser render); re-encode the file without it",
                "dangerous",
                context,
            )
        _check_claims(detected, name, declared, context)
        return detected


def _open_libmagic(*, required: bool) -> Any:
    """One ``magic.Magic(mime=True)``, or None when libmagic is not there and another engine may answer.

    python-magic may be missing (``MissingExtra``), its loader may not find ``libmagic.so``
    (``ImportError``), or libmagic may not find its database (``MagicException``).
    """
    try:
        magic = require("magic", "files", "file type detection with libmagic")
    except ImportError:
        if required:
            raise
        return None
    try:
        return magic.Magic(mime=True)
    except magic.MagicException:
        if required:
            raise
        return None


def _matches(detected: str, exact: tuple[str, ...], majors: tuple[str, ...]) -> bool:
    return detected in exact or "*" in majors or detected.split("/", 1)[0] in majors


def _refined(detected: str, name: str | None, declared: str | None) -> str:
    """Plain text named or declared as a harmless text type (CSV, Markdown, TSV...) is that type: libmagic
    reads only "text", and an allow-list of ``text/csv`` must be able to take a CSV file."""
    if detected != "text/plain":
        return detected
    by_name = type_of_extension(extension(safe_name(name))) if name else None
    for claimed in (canonical(declared or ""), by_name):
        if claimed and claimed != detected and is_data_text(claimed) and not is_dangerous(claimed):
            return claimed
    return detected


def _check_claims(detected: str, name: str | None, declared: str | None, context: dict[str, Any]) -> None:
    """Refuse an extension or a declared type that disagrees with the detected content."""
    if name is not None:
        shown = safe_name(name)
        claimed = type_of_extension(extension(shown))
        if claimed is not None and not compatible(claimed, detected):
            raise _reject(
                f"the name {shown!r} says {claimed} but the content is {detected}; give the file a name "
                "that matches what it is",
                "extension_mismatch",
                {**context, "extension": claimed},
            )
    said = canonical(declared or "")
    if said not in ("", OCTET_STREAM) and not compatible(said, detected, declared=True):
        raise _reject(
            f"the declared content type {said} disagrees with the content, {detected}; send the "
            f"file's real type, or {OCTET_STREAM} to let the server detect it",
            "declared_mismatch",
            {**context, "declared": said},
        )


def validate_allowed(allowed: Sequence[str], field: str) -> tuple[str, ...]:
    """``allowed`` checked and canonicalised: exact types (``image/png``) or wildcards (``image/*``, ``*/*``).

    Entries are lower-cased and aliases resolved (``image/jpg`` is ``image/jpeg``), duplicates dropped.
    ``*/*`` is accepted and means what an empty list means: any type but the dangerous ones. A string
    instead of a list, a bare major type (``image``), ``*/png``, ``image/**`` or parameters raise
    ``ValidationError`` naming ``field``.
    """
    if isinstance(allowed, str | bytes):
        raise ValidationError(
            f"{field} must be a list of content types, not the string {allowed!r}; write [{allowed!r}]",
            field=field,
        )
    out: list[str] = []
    for index, entry in enumerate(allowed):
        if not isinstance(entry, str):
            raise ValidationError(
                f"{field}[{index}] is {type(entry).__name__}, not a content type such as 'image/png'",
                field=field,
                context={"index": index},
            )
        value = entry.strip().lower()
        if ";" in value:
            raise ValidationError(
                f"{field}[{index}]={entry!r} has parameters; list the bare type "
                f"({value.split(';')[0].strip()!r})",
                field=field,
                context={"index": index},
            )
        if not _PATTERN.fullmatch(value):
            hint = (
                f"; did you mean {value + '/*'!r}?" if value and "/" not in value and "*" not in value else ""
            )
            raise ValidationError(
                f"{field}[{index}]={entry!r} is not a content type (image/png) or a wildcard of one major "
                f"type (image/*, or */* for any){hint}",
                field=field,
                context={"index": index},
            )
        value = value if value.endswith("/*") else canonical(value)
        if value not in out:
            out.append(value)
    return tuple(out)


def _compiled(allowed: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    try:
        return _compile(tuple(allowed))
    except TypeError:  # an unhashable entry: let validation say which one
        validate_allowed(allowed, "allowed_types")
        raise


@functools.lru_cache(maxsize=128)
def _compile(allowed: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The exact types and the wildcard majors (``*`` for ``*/*``) of an allow-list, validated once."""
    valid = validate_allowed(allowed, "allowed_types")
    exact = tuple(entry for entry in valid if not entry.endswith("/*"))
    majors = tuple(entry[:-2] for entry in valid if entry.endswith("/*"))
    return exact, majors


def _reject(message: str, reason: Reason, context: dict[str, Any]) -> FileTypeRejected:
    return FileTypeRejected(message, context={**context, "reason": reason})
