"""Original file names made safe to keep as metadata: never a path, never a trick, never too long.

A stored file's key is generated (``files/<2 hex>/<id>``); the name a client sent is only shown back, put
in a ``Content-Disposition`` header or a download's file name. :func:`safe_name` makes sure that, wherever
it lands (a Windows or POSIX file system, a header, a terminal, a log line), it names one plain file and
reads as what it is.
"""

from __future__ import annotations

import re
import unicodedata

from buttress.errors import ValidationError

__all__ = ["MAX_NAME_BYTES", "extension", "safe_name"]

MAX_NAME_BYTES = 255
"""The longest file name ext4, XFS, APFS and NTFS (in UTF-16 units, a looser limit) all accept."""

_KEEP_EXTENSION_BYTES = 32  # a longer "extension" is not one: truncate the whole name instead

# Invisible characters that reorder or hide text: Cc are C0/C1 controls (NUL included) and DEL; Cf are
# format characters (bidi overrides U+202A-202E and isolates U+2066-2069, zero-width U+200B-200F, the BOM
# U+FEFF, soft hyphen, tag characters); Cs are lone surrogates, which no file system or UTF-8 can hold;
# Zl/Zp are the line and paragraph separators, line breaks to a log or a header.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')  # what Windows refuses in a name (besides controls, dropped above)
_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{n}" for n in range(10)}
    | {f"LPT{n}" for n in range(10)}
)
_STRIP_START = ". "
_STRIP_END = ". "


def safe_name(original: str | None, *, default: str = "file") -> str:
    """The file name ``original`` made safe to keep and show, or ``default`` when nothing is left.

    Only the last path component is kept (split on ``/`` and ``\\``, so ``../../etc/passwd`` and
    ``C:\\Windows\\x.exe`` lose their directories). Invisible and control characters are dropped (NUL, C0/C1,
    bidi overrides and isolates, zero-width characters, the BOM: they hide or reorder what a reader sees).

    Normalisation is NFKC, not NFC: NFKC also folds compatibility look-alikes, so a full-width solidus
    (U+FF0F), full stop (U+FF0E) or less-than sign (U+FF1C) becomes ``/``, ``.`` or ``<`` *before* the
    separators, dots and characters Windows forbids are handled; with NFC a full-width ``../../x`` would
    survive here and turn into a traversal in any later tool that applies NFKC (many search and identity
    systems do). The price is that ligatures, superscripts and full-width letters are shown in their plain
    form, which is fine for metadata.

    Characters Windows forbids (``<>:"/\\|?*``) become ``_``; leading dots and spaces go (no hidden
    ``.htaccess``), and trailing ones too (Windows drops them, so ``a.exe.`` would open as ``a.exe``).
    A Windows device name (CON, PRN, AUX, NUL, COM0-9, LPT0-9, CONIN$, CONOUT$, in any case, with or
    without an extension) gets a ``_`` prefix. A double extension such as ``report.pdf.exe`` is kept as it
    is: the name is never executed or used to serve the bytes, and the type check compares the *last*
    extension with the content. Finally the name is cut to 255 UTF-8 bytes, keeping its extension and
    never splitting a character.

    ``safe_name(safe_name(x)) == safe_name(x)`` for every ``x``. ``default`` must itself be a safe name
    (it is returned as given); a default that is not raises ``ValidationError``.
    """
    if original is None:
        return _default(default)
    name = _clean(original)
    for _ in range(3):  # a pass can expose a new leading dot or a new composition; converge
        again = _clean(name)
        if again == name:
            break
        name = again
    return name if name else _default(default)


def extension(name: str) -> str:
    """The last suffix of ``name``, lower-case and without the dot; ``""`` if it has none.

    ``"report.pdf.exe"`` gives ``"exe"``; ``".bashrc"`` and ``"README"`` give ``""``; a directory part
    (either separator) is ignored.
    """
    base = re.split(r"[/\\]", name)[-1].rstrip(_STRIP_END)
    stem, dot, suffix = base.lstrip(".").rpartition(".")
    if not dot or not stem:
        return ""
    return suffix.lower()


def _clean(original: str) -> str:
    name = "".join(ch for ch in original if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = unicodedata.normalize("NFKC", name)
    # NFKC can produce characters that were not there (a compatibility space, a separator); drop and
    # replace after it, then take the last component.
    name = "".join(
        " " if unicodedata.category(ch) == "Zs" else ch
        for ch in name
        if unicodedata.category(ch) not in _DROPPED_CATEGORIES
    )
    name = re.split(r"[/\\]", name)[-1]
    name = _FORBIDDEN.sub("_", name)
    name = name.lstrip(_STRIP_START).rstrip(_STRIP_END)
    if not name:
        return ""
    if name.split(".", 1)[0].rstrip(" ").upper() in _RESERVED:
        name = "_" + name
    return _truncate(name).rstrip(_STRIP_END)


def _truncate(name: str) -> str:
    encoded = name.encode()
    if len(encoded) <= MAX_NAME_BYTES:
        return name
    stem, dot, suffix = name.rpartition(".")
    tail = (dot + suffix).encode()
    if stem and dot and len(tail) <= _KEEP_EXTENSION_BYTES:
        return _cut(stem, MAX_NAME_BYTES - len(tail)).rstrip(_STRIP_END) + dot + suffix
    return _cut(name, MAX_NAME_BYTES)


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes of ``text``, ending on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


def _default(default: str) -> str:
    if not default or _clean(default) != default:
        raise ValidationError(
            f"default={default!r} is not a safe file name itself; pass a plain name such as 'file' or "
            "'upload.bin'",
            field="default",
        )
    return default
