"""Second looks at the first bytes, where a detector's answer is too coarse or missing.

libmagic reads a ZIP's first entry only, so an OOXML file whose first entry is not
``[Content_Types].xml`` comes back as plain ZIP; an SVG that opens with a comment or a BOM comes back as
text. filetype knows no text at all. These functions refine an answer from the same bytes, the same way
for both detectors, so the answer does not depend on which one is installed.
"""

from __future__ import annotations

import codecs
import json
import re
import struct

from buttress.files._typenames import APK, DOCM, DOCX, JAR, OCTET_STREAM, PPTM, PPTX, XLSM, XLSX

__all__ = ["refine", "sniff_binary", "sniff_text", "zip_entry_names"]

_ZIP_LOCAL = b"PK\x03\x04"
_OOXML = {"word/": (DOCX, DOCM), "xl/": (XLSX, XLSM), "ppt/": (PPTX, PPTM)}
_ZIP_ANSWERS = frozenset({"application/zip", DOCX, XLSX, PPTX})

_PROLOG = re.compile(
    rb"\A(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]{0,400}\?>\s*)?(?:(?:<!--.{0,2000}?-->|<!DOCTYPE[^>]{0,1000}>)\s*)*",
    re.DOTALL | re.IGNORECASE,
)
_SVG_ROOT = re.compile(rb"<svg[\s>/]", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_HTML_START = ("<!doctype html", "<html", "<head", "<body", "<script", "<iframe", "<div", "<meta", "<title")
_INTERPRETERS = (
    (("sh", "bash", "dash", "zsh", "ksh", "csh", "tcsh", "ash"), "text/x-shellscript"),
    (("python", "python2", "python3", "pypy", "pypy3"), "text/x-script.python"),
    (("perl",), "text/x-perl"),
    (("ruby",), "text/x-ruby"),
    (("node", "nodejs", "deno", "bun"), "application/javascript"),
    (("php",), "text/x-php"),
    (("lua",), "text/x-lua"),
    (("tclsh", "wish"), "text/x-tcl"),
    (("awk", "gawk", "mawk"), "text/x-awk"),
    (("pwsh", "powershell"), "text/x-powershell"),
)


def refine(detected: str, head: bytes) -> str:
    """``detected`` made precise where the first bytes say more than the detector did."""
    if detected in _ZIP_ANSWERS or (detected == OCTET_STREAM and head.startswith(_ZIP_LOCAL)):
        return _refine_zip(detected, head)
    if detected in {"text/plain", "text/xml", "text/html"} and _is_svg(head):
        return "image/svg+xml"
    if detected == "font/sfnt" and head.startswith(b"OTTO"):
        return "font/otf"
    if detected == "font/woff" and head.startswith(b"wOF2"):
        return "font/woff2"
    if (
        detected == OCTET_STREAM
        and len(head) == 1
        and (head.isalnum() or head in b"!\"#$%&'()*+,-./:;<=>?@[]^_`{|}~")
    ):
        return "text/plain"  # libmagic needs two bytes to call anything text
    return detected


def zip_entry_names(head: bytes) -> list[str]:
    """Names of the ZIP entries whose local headers lie (whole) in ``head``, in order.

    Every local header signature is tried, not only the chain from the first: an entry written with a data
    descriptor has no size in its header, so the next header can only be found by its signature.
    """
    names: list[str] = []
    start = head.find(_ZIP_LOCAL)
    while start != -1 and start + 30 <= len(head):
        (length,) = struct.unpack_from("<H", head, start + 26)
        end = start + 30 + length
        if length and end <= len(head):
            names.append(head[start + 30 : end].decode("utf-8", errors="replace"))
        start = head.find(_ZIP_LOCAL, start + 4)
    return names


def _refine_zip(detected: str, head: bytes) -> str:
    names = zip_entry_names(head)
    if not names:
        return detected
    macros = any(name.endswith("vbaProject.bin") for name in names)
    if "[Content_Types].xml" in names or "_rels/.rels" in names:
        for prefix, (plain, with_macros) in _OOXML.items():
            if any(name.startswith(prefix) for name in names):
                return with_macros if macros else plain
    if detected not in {"application/zip", OCTET_STREAM}:
        return detected
    if "AndroidManifest.xml" in names or "classes.dex" in names:
        return APK
    if "META-INF/MANIFEST.MF" in names or any(name.endswith(".class") for name in names):
        return JAR
    return "application/zip"


def _is_svg(head: bytes) -> bool:
    prolog = _PROLOG.match(head)
    rest = head[prolog.end() if prolog else 0 :]
    return _SVG_ROOT.match(rest) is not None


# Formats filetype does not know, most of them dangerous: with them unknown, an empty allow-list would take
# a Mach-O binary or a Java class as "application/octet-stream".
_MAGIC_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"\xfe\xed\xfa\xce", "application/x-mach-binary"),
    (b"\xfe\xed\xfa\xcf", "application/x-mach-binary"),
    (b"\xce\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (
        b"\x4c\x00\x00\x00\x01\x14\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46",
        "application/x-ms-shortcut",
    ),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/x-ole-storage"),
    (b"\xed\xab\xee\xdb", "application/x-rpm"),
)
_ELF_TYPES = {
    1: "application/x-object",
    2: "application/x-executable",
    3: "application/x-sharedlib",
    4: "application/x-coredump",
}


def sniff_binary(head: bytes, found: str | None) -> str | None:
    """A binary type from magic numbers filetype lacks, or ``found`` made precise (ELF kinds)."""
    if head.startswith(b"\x7fELF") and len(head) >= 18:
        order = "<" if head[5] == 1 else ">"
        (kind,) = struct.unpack_from(order + "H", head, 16)
        return _ELF_TYPES.get(kind, "application/x-executable")
    if found is not None:
        return found
    for prefix, kind_name in _MAGIC_PREFIXES:
        if head.startswith(prefix):
            return kind_name
    if head.startswith(b"\xca\xfe\xba\xbe") and len(head) >= 8:
        # Java classes and universal Mach-O binaries share the magic: a class's major version is >= 45,
        # a universal binary's architecture count is small.
        (count,) = struct.unpack_from(">I", head, 4)
        return "application/x-mach-binary" if count < 45 else "application/x-java-applet"
    if len(head) >= 16 and head[2:4] == b"\r\n" and 2900 <= int.from_bytes(head[:2], "little") < 4000:
        return "application/x-bytecode.python"  # CPython 3 byte code: a 2-byte version magic, then CR LF
    return None


def sniff_text(head: bytes) -> str | None:  # noqa: PLR0911 - one return per text rule, flat on purpose
    """The type of ``head`` if it is text (None if binary): scripts, markup, JSON, CSV or plain.

    For the filetype engine, which recognises binary formats only. The rules mirror libmagic's strongest
    text tests (a shebang, a markup root, a JSON document, regular CSV columns) and nothing subtler.
    """
    text = _decode(head)
    if text is None:
        return None
    stripped = text.lstrip("\ufeff \t\r\n")
    lowered = stripped[:1024].lower()
    if stripped.startswith("#!"):
        return _shebang(stripped)
    if "<?php" in text.lower():
        return "text/x-php"
    if _is_svg(head):
        return "image/svg+xml"
    if lowered.startswith("<?xml"):
        return "application/xhtml+xml" if "<html" in lowered else "text/xml"
    if lowered.startswith(_HTML_START):
        return "text/html"
    if lowered.startswith("@echo off"):
        return "text/x-msdos-batch"
    if lowered.startswith("{\\rtf"):
        return "text/rtf"
    if lowered.startswith(("begin:vcalendar", "begin:vcard", "\\documentclass")):
        return (
            "text/calendar"
            if "vcalendar" in lowered[:16]
            else "text/vcard"
            if "vcard" in lowered[:16]
            else "text/x-tex"
        )
    if lowered.startswith("--- ") and "\n+++ " in lowered:
        return "text/x-diff"
    if stripped[:1] in {"{", "["} and _is_json(stripped):
        return "application/json"
    if _is_csv(stripped):
        return "text/csv"
    return "text/plain"


def _decode(head: bytes) -> str | None:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = head[: len(head) - len(head) % 2].decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = codecs.getincrementaldecoder("utf-8")().decode(
                head, final=False
            )  # a cut last character is fine
        except UnicodeDecodeError:
            return None
    return None if _CONTROL.search(text) else text


def _shebang(text: str) -> str:
    words = text[2:].split("\n", 1)[0].split()
    program = words[0].rsplit("/", 1)[-1] if words else ""
    if program == "env":
        program = next((word for word in words[1:] if not word.startswith("-")), "")
    for names, kind in _INTERPRETERS:
        if program in names or program.rstrip("0123456789.") in names:
            return kind
    return "text/x-shellscript"  # a script for an interpreter we do not know is still a script


def _is_json(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


def _is_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:20] if line]
    if len(lines) < 2:
        return False
    counts = {line.count(",") for line in lines[:-1]}  # the last line may be cut
    return len(counts) == 1 and counts.pop() > 0
