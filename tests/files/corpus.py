"""A corpus of real files of many types, built byte by byte here, with the type each one really is.

No file comes from the network and none needs Pillow: images, audio, fonts, archives and executables are
written from their format specifications (smallest valid files), by the standard library (zip, tar, gzip,
bz2, xz, sqlite, wave, marshal), or taken from this interpreter (its own ELF executable and an extension
module). Each :class:`Sample` says what a correct detector must answer; :data:`SPOOFED` lists uploads
that lie about themselves, each with the reason ``TypeDetector.check`` must give for refusing it.
Used by tests/files/test_detect.py and benchmarks/bench_files_detect.py.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import io
import json
import lzma
import marshal
import sqlite3
import struct
import sys
import sysconfig
import tarfile
import tempfile
import wave
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["Sample", "Spoof", "corpus", "spoofed"]

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
ODT = "application/vnd.oasis.opendocument.text"
ODS = "application/vnd.oasis.opendocument.spreadsheet"


@dataclass(frozen=True)
class Sample:
    """One file: the name it is uploaded under, its bytes, and the type it really is."""

    name: str
    data: bytes
    expected: str


@dataclass(frozen=True)
class Spoof:
    """An upload that lies: ``check`` with these arguments must raise with ``reason``."""

    label: str
    data: bytes
    name: str | None
    declared: str | None
    allowed: tuple[str, ...]
    reason: str


# ---------------------------------------------------------------------------------------------- images


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png(width: int = 4, height: int = 3, *, text: bytes = b"") -> bytes:
    """An RGB PNG filled with a gradient (filter byte 0 on every row)."""
    raw = b"".join(
        b"\x00" + b"".join(bytes((x * 40 % 256, y * 60 % 256, 90)) for x in range(width))
        for y in range(height)
    )
    chunks = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    if text:
        chunks += _png_chunk(b"tEXt", b"Comment\x00" + text)
    chunks += _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(body) + 2) + body


def jpeg(*, exif: bool = False, blocks: int = 1) -> bytes:
    """A baseline grey JPEG of ``blocks`` 8x8 blocks, every block flat (DC difference 0, then EOB).

    One-symbol Huffman tables: the DC table codes category 0 as ``0``, the AC table codes EOB as ``0``,
    so each block is the two bits ``00``; the scan is padded with ones.
    """
    app = (
        _jpeg_segment(0xE1, b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x00")
        if exif
        else _jpeg_segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    )
    dqt = _jpeg_segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = _jpeg_segment(0xC0, struct.pack(">BHHB", 8, 8, 8 * blocks, 1) + b"\x01\x11\x00")
    one_symbol = bytes([1] + [0] * 15)
    dht = _jpeg_segment(0xC4, b"\x00" + one_symbol + b"\x00" + b"\x10" + one_symbol + b"\x00")
    sos = _jpeg_segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    bits = "00" * blocks
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i : i + 8], 2) for i in range(0, len(bits), 8))
    return b"\xff\xd8" + app + dqt + sof + dht + sos + scan + b"\xff\xd9"


def gif(*, version: bytes = b"89a", trailer: bytes = b"") -> bytes:
    """A 1x1 GIF with a two-colour palette; ``trailer`` goes after the image (a comment extension)."""
    header = b"GIF" + version + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    comment = b""
    if trailer:
        comment = b"\x21\xfe" + b"".join(bytes([len(part)]) + part for part in _blocks(trailer)) + b"\x00"
    return header + image + comment + b"\x3b"


def _blocks(data: bytes) -> list[bytes]:
    return [data[i : i + 255] for i in range(0, len(data), 255)]


def bmp(width: int = 3, height: int = 2) -> bytes:
    """A 24-bit BMP (BITMAPINFOHEADER), rows padded to four bytes."""
    row = b"".join(bytes((x * 50 % 256, 20, 200)) for x in range(width))
    row += b"\x00" * (-len(row) % 4)
    pixels = row * height
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(pixels), 2835, 2835, 0, 0)
    header = b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info))
    return header + info + pixels


def tiff(*, big_endian: bool = False) -> bytes:
    """A 2x2 grey baseline TIFF: header, one IFD of eight entries, the strip."""
    order = ">" if big_endian else "<"
    pixels = b"\x00\x80\x80\xff"
    entries = [
        (256, 3, 1, 2),  # ImageWidth
        (257, 3, 1, 2),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # PhotometricInterpretation: black is zero
        (273, 4, 1, 8 + 2 + 8 * 12 + 4),  # StripOffsets: right after the IFD
        (278, 3, 1, 2),  # RowsPerStrip
        (279, 4, 1, len(pixels)),  # StripByteCounts
    ]
    ifd = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        packed = (
            struct.pack(order + "H", value) + b"\x00\x00" if kind == 3 else struct.pack(order + "I", value)
        )
        ifd += struct.pack(order + "HHI", tag, kind, count) + packed
    ifd += struct.pack(order + "I", 0)
    head = (b"MM" if big_endian else b"II") + struct.pack(order + "HI", 42, 8)
    return head + ifd + pixels


def ico(*, inner_png: bool = False) -> bytes:
    """A 1x1 icon whose image is a DIB (AND mask included) or, as Windows Vista allows, a PNG."""
    if inner_png:
        image = png(1, 1)
    else:
        info = struct.pack("<IiiHHIIiiII", 40, 1, 2, 1, 32, 0, 8, 0, 0, 0, 0)
        image = info + b"\x10\x20\x30\xff" + b"\x00\x00\x00\x00"
    entry = struct.pack("<BBBBHHII", 1, 1, 0, 0, 1, 32, len(image), 6 + 16)
    return struct.pack("<HHH", 0, 1, 1) + entry + image


def webp() -> bytes:
    """A 1x1 lossless WebP (VP8L): one green pixel."""
    vp8l = b"\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
    chunk = b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def psd() -> bytes:
    """A 1x1 RGB Photoshop file with empty sections and raw image data."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, 1, 1, 8, 3)
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 0) + b"\x10\x20\x30"


def pnm() -> bytes:
    return b"P6\n2 1\n255\n" + bytes((255, 0, 0, 0, 0, 255))


def isobmff(brand: bytes, compatible: bytes, *, media: bool = True) -> bytes:
    """An ISO base media file (MP4, M4A, QuickTime, HEIF, AVIF): ftyp, then a free box and an mdat."""
    ftyp_body = brand + struct.pack(">I", 0x200) + compatible
    ftyp = struct.pack(">I", 8 + len(ftyp_body)) + b"ftyp" + ftyp_body
    rest = struct.pack(">I", 16) + b"free" + b"\x00" * 8
    if media:
        rest += struct.pack(">I", 8 + 64) + b"mdat" + bytes(range(64))
    return ftyp + rest


# ----------------------------------------------------------------------------------------------- audio


def wav(frames: int = 800) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(b"\x00\x10" * frames)
    return buffer.getvalue()


def aiff() -> bytes:
    """A mono 16-bit AIFF: COMM (the rate as an 80-bit float, 8000 Hz) and SSND chunks."""
    rate = b"\x40\x0b\xfa\x00\x00\x00\x00\x00\x00\x00"  # 8000.0 as IEEE 754 extended
    comm = b"COMM" + struct.pack(">IhIh", 18, 1, 4, 16) + rate
    samples = b"\x00\x01" * 4
    ssnd = b"SSND" + struct.pack(">III", 8 + len(samples), 0, 0) + samples
    body = b"AIFF" + comm + ssnd
    return b"FORM" + struct.pack(">I", len(body)) + body


def au() -> bytes:
    """Sun audio: header, then four 8-bit mu-law samples."""
    return b".snd" + struct.pack(">IIIII", 24, 4, 1, 8000, 1) + b"\xff\x7f\xff\x7f"


def mp3(*, id3: bool = True, frames: int = 4) -> bytes:
    """MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes each), after an ID3v2.3 tag or not."""
    frame = b"\xff\xfb\x90\x64" + b"\x00" * 413
    tag = b""
    if id3:
        title = b"\x00Corpus"
        body = b"TIT2" + struct.pack(">I", len(title)) + b"\x00\x00" + title
        tag = b"ID3\x03\x00\x00" + _synchsafe(len(body)) + body
    return tag + frame * frames


def _synchsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def ogg_page(packet: bytes, *, serial: int = 7, sequence: int = 0, flags: int = 2) -> bytes:
    """One Ogg page carrying one packet, with its CRC."""
    lacing = bytes([255] * (len(packet) // 255) + [len(packet) % 255])
    head = b"OggS\x00" + struct.pack("<BqIIIB", flags, 0, serial, sequence, 0, len(lacing)) + lacing
    page = head + packet
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def ogg_vorbis() -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiB", 0, 1, 8000, 0, 64000, 0, 0xB8) + b"\x01"
    return ogg_page(ident)


def ogg_opus() -> bytes:
    return ogg_page(b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0))


def flac() -> bytes:
    """fLaC and a last STREAMINFO block (8 kHz, mono, 16 bit, 0 samples)."""
    info = struct.pack(">HH", 4096, 4096) + b"\x00\x00\x00" * 2
    info += ((8000 << 44) | (0 << 41) | (15 << 36)).to_bytes(8, "big") + b"\x00" * 16
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


def midi() -> bytes:
    track = b"\x00\x90\x3c\x40\x60\x80\x3c\x40\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, 96) + b"MTrk" + struct.pack(">I", len(track)) + track


# ----------------------------------------------------------------------------------------------- video


def _ebml(element: int, body: bytes) -> bytes:
    size = len(body) | 0x80 if len(body) < 127 else None
    if size is None:
        return (
            element.to_bytes((element.bit_length() + 7) // 8, "big")
            + b"\x01"
            + len(body).to_bytes(7, "big")
            + body
        )
    return element.to_bytes((element.bit_length() + 7) // 8, "big") + bytes([size]) + body


def matroska(doctype: bytes) -> bytes:
    """An EBML header naming ``doctype`` (webm or matroska), then an empty Segment."""
    header = (
        _ebml(0x4286, b"\x01")
        + _ebml(0x42F7, b"\x01")
        + _ebml(0x42F2, b"\x04")
        + _ebml(0x42F3, b"\x08")
        + _ebml(0x4282, doctype)
        + _ebml(0x4287, b"\x02")
        + _ebml(0x4285, b"\x02")
    )
    return _ebml(0x1A45DFA3, header) + _ebml(0x18538067, _ebml(0x1549A966, _ebml(0x2AD7B1, b"\x0f\x42\x40")))


def avi() -> bytes:
    avih = b"avih" + struct.pack("<I", 56) + struct.pack("<14I", 40000, 0, 0, 0, 1, 0, 1, 0, 2, 2, 0, 0, 0, 0)
    hdrl = b"LIST" + struct.pack("<I", 4 + len(avih)) + b"hdrl" + avih
    movi = b"LIST" + struct.pack("<I", 4) + b"movi"
    body = b"AVI " + hdrl + movi
    return b"RIFF" + struct.pack("<I", len(body)) + body


def flv() -> bytes:
    return b"FLV\x01\x05" + struct.pack(">I", 9) + struct.pack(">I", 0)


# ----------------------------------------------------------------------------------------------- fonts


def sfnt(version: bytes) -> bytes:
    """A TrueType (0x00010000) or OpenType-CFF (OTTO) table directory with a head table."""
    head = struct.pack(">IIIIHH", 0x00010000, 0x00010000, 0, 0x5F0F3CF5, 0, 1000) + b"\x00" * 36
    tables = [(b"head", head)]
    offset = 12 + 16 * len(tables)
    directory = version + struct.pack(">HHHH", len(tables), 16, 0, 0)
    data = b""
    for tag, body in tables:
        directory += tag + struct.pack(">III", zlib.crc32(body), offset + len(data), len(body))
        data += body + b"\x00" * (-len(body) % 4)
    return directory + data


def woff(signature: bytes) -> bytes:
    """A WOFF (wOFF) or WOFF2 (wOF2) header wrapping a TrueType flavour."""
    font = sfnt(b"\x00\x01\x00\x00")
    if signature == b"wOFF":
        header = signature + struct.pack(
            ">IIHHIHHIIIII", 0x00010000, 44 + len(font), 0, 0, len(font), 1, 0, 0, 0, 0, 0, 0
        )
    else:
        header = signature + struct.pack(
            ">IIHHIIHHIIIII", 0x00010000, 48 + len(font), 1, 0, len(font), len(font), 1, 0, 0, 0, 0, 0, 0
        )
    return header + font


# ---------------------------------------------------------------------------------------- documents


def pdf(pages: int = 1) -> bytes:
    """A PDF with ``pages`` empty pages and a correct cross-reference table."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages)).encode()
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(pages).encode() + b" >>")
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"] * pages
    out = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += str(number).encode() + b" 0 obj\n" + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def postscript() -> bytes:
    return (
        b"%!PS-Adobe-3.0\n%%BoundingBox: 0 0 100 100\n%%EndComments\n"
        b"newpath 10 10 moveto 90 90 lineto stroke\nshowpage\n"
    )


def rtf() -> bytes:
    return b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}}\\f0\\fs24 Hello from the corpus.\\par}\n"


def ole(clsid_hint: bytes = b"") -> bytes:
    """A Compound File Binary (the container of .doc/.xls/.msi) with one empty FAT sector."""
    header = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 16
    header += struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6) + b"\x00" * 6
    header += struct.pack("<IIIIIIIII", 0, 1, 1, 0, 0x1000, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0)
    header += struct.pack("<I", 0) + b"\xff\xff\xff\xff" * 108
    fat = struct.pack("<II", 0xFFFFFFFD, 0xFFFFFFFE) + b"\xff\xff\xff\xff" * 126
    entry = "Root Entry".encode("utf-16-le") + b"\x00\x00"
    root = entry + b"\x00" * (64 - len(entry)) + struct.pack("<HBB", len(entry), 5, 1)
    root += struct.pack("<III", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF) + clsid_hint.ljust(16, b"\x00")[:16]
    root += b"\x00" * (128 - len(root))
    directory = root + b"\x00" * (512 - len(root))
    return header + fat + directory


def _zip(entries: list[tuple[str, bytes]], *, stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, body) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and index == 0 else zipfile.ZIP_DEFLATED
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(info, body, compress_type=method)
    return buffer.getvalue()


_RELS = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    b'officeDocument" Target="%s"/></Relationships>'
)


def _content_types(part: bytes, kind: bytes) -> bytes:
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        b'<Default Extension="xml" ContentType="application/xml"/>'
        b'<Override PartName="/'
        + part
        + b'" ContentType="application/vnd.openxmlformats-officedocument.'
        + kind
        + b'"/></Types>'
    )


def docx(*, content_types_first: bool = True, paragraphs: int = 3) -> bytes:
    """A WordprocessingML package; Word writes [Content_Types].xml first, other tools do not always."""
    body = b"".join(
        b"<w:p><w:r><w:t>Paragraph %d of the corpus.</w:t></w:r></w:p>" % i for i in range(paragraphs)
    )
    document = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="http://schemas.'
        b'openxmlformats.org/wordprocessingml/2006/main"><w:body>' + body + b"</w:body></w:document>"
    )
    types = (
        "[Content_Types].xml",
        _content_types(b"word/document.xml", b"wordprocessingml.document.main+xml"),
    )
    rels = ("_rels/.rels", _RELS % b"word/document.xml")
    parts = (
        [types, rels, ("word/document.xml", document)]
        if content_types_first
        else [rels, ("word/document.xml", document), types]
    )
    return _zip(parts)


def xlsx() -> bytes:
    workbook = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<workbook xmlns="http://schemas.openxmlformats'
        b'.org/spreadsheetml/2006/main"><sheets><sheet name="A" sheetId="1"/></sheets></workbook>'
    )
    return _zip(
        [
            ("[Content_Types].xml", _content_types(b"xl/workbook.xml", b"spreadsheetml.sheet.main+xml")),
            ("_rels/.rels", _RELS % b"xl/workbook.xml"),
            ("xl/workbook.xml", workbook),
        ]
    )


def pptx(*, content_types_first: bool = True) -> bytes:
    presentation = (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<p:presentation xmlns:p="http://schemas.'
        b'openxmlformats.org/presentationml/2006/main"/>'
    )
    types = (
        "[Content_Types].xml",
        _content_types(b"ppt/presentation.xml", b"presentationml.presentation.main+xml"),
    )
    rels = ("_rels/.rels", _RELS % b"ppt/presentation.xml")
    doc = ("ppt/presentation.xml", presentation)
    return _zip([types, rels, doc] if content_types_first else [rels, doc, types])


def opendocument(mimetype: str) -> bytes:
    """An OpenDocument package: the ``mimetype`` entry first and stored, as the specification requires."""
    urn = b"urn:oasis:names:tc:opendocument:xmlns"
    content = b'<?xml version="1.0"?>\n<office:document-content xmlns:office="' + urn + b':office:1.0"/>'
    manifest = b'<?xml version="1.0"?>\n<manifest:manifest xmlns:manifest="' + urn + b':manifest:1.0"/>'
    return _zip(
        [("mimetype", mimetype.encode()), ("content.xml", content), ("META-INF/manifest.xml", manifest)],
        stored_first=True,
    )


def epub() -> bytes:
    container = (
        b'<?xml version="1.0"?>\n<container version="1.0" '
        b'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"/>'
    )
    return _zip(
        [("mimetype", b"application/epub+zip"), ("META-INF/container.xml", container)], stored_first=True
    )


def jar() -> bytes:
    return _zip(
        [
            ("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nMain-Class: Main\r\n\r\n"),
            ("Main.class", java_class()),
        ]
    )


def plain_zip(n: int = 0) -> bytes:
    return _zip([(f"notes-{n}.txt", b"line %d\n" % n * 200), ("data/values.csv", b"a,b\n1,2\n")])


def empty_zip() -> bytes:
    return b"PK\x05\x06" + b"\x00" * 18


# --------------------------------------------------------------------------------- archives, compression

_PAYLOAD = b"The corpus payload: a line of text that compresses well.\n" * 120


def tar_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        info = tarfile.TarInfo("payload.txt")
        info.size = len(_PAYLOAD)
        info.mtime = 1_700_000_000
        archive.addfile(info, io.BytesIO(_PAYLOAD))
    return buffer.getvalue()


def seven_zip() -> bytes:
    """A 7z signature header pointing at an empty end header."""
    end_header = b"\x01\x00"  # kHeader, kEnd
    start = struct.pack("<QQI", 0, len(end_header), zlib.crc32(end_header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<I", zlib.crc32(start)) + start + end_header


def rar() -> bytes:
    """A RAR 5 signature, main archive header and end of archive (CRCs included)."""

    def block(body: bytes) -> bytes:
        sized = bytes([len(body)]) + body
        return struct.pack("<I", zlib.crc32(sized)) + sized

    return b"Rar!\x1a\x07\x01\x00" + block(b"\x01\x00\x00") + block(b"\x05\x00\x00")


def zstd() -> bytes:
    """A Zstandard frame with one raw block holding the payload's first 100 bytes."""
    data = _PAYLOAD[:100]
    block_header = ((len(data) << 3) | (0 << 1) | 1).to_bytes(3, "little")
    return b"\x28\xb5\x2f\xfd" + b"\x20" + bytes([len(data)]) + block_header + data


def lz4() -> bytes:
    """An LZ4 frame with one uncompressed block."""
    data = _PAYLOAD[:64]
    descriptor = b"\x60\x40"
    return (
        b"\x04\x22\x4d\x18"
        + descriptor
        + b"\x82"
        + struct.pack("<I", len(data) | 0x80000000)
        + data
        + b"\x00" * 4
    )


def cpio() -> bytes:
    """A new-ASCII cpio archive holding one file and the trailer."""

    def member(name: bytes, body: bytes, mode: int) -> bytes:
        fields = [0, mode, 0, 0, 1, 1_700_000_000, len(body), 0, 0, 0, 0, len(name) + 1, 0]
        head = b"070701" + b"".join(b"%08X" % field for field in fields) + name + b"\x00"
        head += b"\x00" * (-len(head) % 4)
        return head + body + b"\x00" * (-len(body) % 4)

    return member(b"a.txt", b"hello\n", 0o100644) + member(b"TRAILER!!!", b"", 0)


def ar_archive(*, deb: bool = False) -> bytes:
    """A Unix ar archive; with ``deb`` its first member is debian-binary, which makes it a .deb."""

    def member(name: bytes, body: bytes) -> bytes:
        head = name.ljust(16) + b"1700000000".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
        head += str(len(body)).encode().ljust(10) + b"`\n"
        return head + body + b"\n" * (len(body) % 2)

    if deb:
        return (
            b"!<arch>\n"
            + member(b"debian-binary", b"2.0\n")
            + member(b"control.tar.gz", gzip.compress(b"x", mtime=0))
        )
    return b"!<arch>\n" + member(b"hello.o/", b"\x7fELF" + b"\x00" * 60)


def rpm() -> bytes:
    lead = b"\xed\xab\xee\xdb\x03\x00\x00\x00\x00\x01" + b"corpus-1.0-1".ljust(66, b"\x00")
    return lead + struct.pack(">HH", 1, 5) + b"\x00" * 16 + b"\x8e\xad\xe8\x01" + b"\x00" * 12


# ------------------------------------------------------------------------------------------- executables


def pe(*, dll: bool = False, machine: int = 0x8664) -> bytes:
    """A PE32+ image: DOS stub header, PE signature, COFF header and an optional header, no sections."""
    dos = b"MZ" + b"\x90\x00\x03\x00" + b"\x00" * 54 + struct.pack("<I", 0x80)
    dos += b"\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21"
    dos += b"This program cannot be run in DOS mode.\r\r\n$"
    dos = dos.ljust(0x80, b"\x00")
    characteristics = 0x0022 | (0x2000 if dll else 0)
    coff = struct.pack("<HHIIIHH", machine, 0, 1_700_000_000, 0, 0, 240, characteristics)
    optional = struct.pack("<HBBIIIII", 0x20B, 14, 0, 0x200, 0, 0, 0x1000, 0x1000)
    optional += struct.pack(
        "<QIIHHHHHHIIIIHH", 0x140000000, 0x1000, 0x200, 6, 0, 0, 0, 6, 0, 0, 0x2000, 0x200, 0, 3, 0x8160
    )
    optional += struct.pack("<QQQQII", 0x100000, 0x1000, 0x100000, 0x1000, 0, 16) + b"\x00" * 128
    return dos + b"PE\x00\x00" + coff + optional


def mach_o() -> bytes:
    """A 64-bit x86-64 Mach-O executable header with no load commands."""
    return (
        struct.pack("<IiiIIII", 0xFEEDFACF, 0x01000007, 3, 2, 0, 0, 0x00200085) + b"\x00" * 4 + b"\x00" * 64
    )


def java_class() -> bytes:
    return b"\xca\xfe\xba\xbe" + struct.pack(">HH", 0, 61) + struct.pack(">H", 1) + b"\x00" * 16


def wasm() -> bytes:
    """A WebAssembly module with one empty type section."""
    return b"\x00asm\x01\x00\x00\x00" + b"\x01\x01\x00"


def pyc() -> bytes:
    code = compile("print('corpus')\n", "corpus.py", "exec")
    return (
        importlib.util.MAGIC_NUMBER
        + b"\x00\x00\x00\x00"
        + struct.pack("<II", 1_700_000_000, 16)
        + marshal.dumps(code)
    )


def lnk() -> bytes:
    """A Windows shell link header (no target list)."""
    clsid = bytes.fromhex("0114020000000000c000000000000046")
    return struct.pack("<I", 0x4C) + clsid + struct.pack("<II", 0, 0x20) + b"\x00" * (0x4C - 28)


def elf(kind: int) -> bytes:
    """A 64-bit little-endian x86-64 ELF header of type ``kind`` (1 relocatable, 2 executable)."""
    ident = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    header = ident + struct.pack(
        "<HHIQQQIHHHHHH", kind, 0x3E, 1, 0x401000 if kind == 2 else 0, 0, 0, 0, 64, 0, 0, 64, 0, 0
    )
    return header + b"\x00" * 64


def _this_interpreter() -> bytes:
    return Path(sys.executable).resolve().read_bytes()[:65536]


def _shared_library() -> bytes:
    import _sqlite3

    return Path(_sqlite3.__file__).read_bytes()[:65536]


def sqlite_db(rows: int = 3) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "corpus.sqlite"
        connection = sqlite3.connect(path)
        try:
            connection.execute("create table t (id integer primary key, name text)")
            connection.executemany("insert into t (name) values (?)", [(f"row {i}",) for i in range(rows)])
            connection.commit()
        finally:
            connection.close()
        return path.read_bytes()


# ------------------------------------------------------------------------------------------------- text

HTML = b"<!DOCTYPE html>\n<html><head><title>Corpus</title></head><body><p>hello</p></body></html>\n"
SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b'<rect width="10" height="10" fill="red"/></svg>\n'
)
SVG_BARE = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 4 4"><circle cx="2" cy="2" r="1"/></svg>\n'
SVG_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>\n'
XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<catalog><book id="1"><title>Corpus</title></book></catalog>\n'
)
TEXT = b"The quick brown fox jumps over the lazy dog. " * 20 + b"\n"


def csv_text(rows: int = 30) -> bytes:
    return b"id,name,quantity,price\n" + b"".join(
        b"%d,item %d,%d,%d.50\n" % (i, i, i * 3, i) for i in range(rows)
    )


def json_text(n: int = 0) -> bytes:
    return json.dumps({"id": n, "tags": ["a", "b"], "nested": {"ok": True, "value": 1.5}}, indent=2).encode()


SCRIPTS: dict[str, tuple[bytes, str]] = {
    "install.sh": (b"#!/bin/sh\nset -e\necho installing\nrm -rf ./build\n", "text/x-shellscript"),
    "deploy.bash": (b'#!/usr/bin/env bash\nfor f in *; do echo "$f"; done\n', "text/x-shellscript"),
    "tool.py": (b"#!/usr/bin/env python3\nimport sys\nprint(sys.argv)\n", "text/x-script.python"),
    "report.pl": (b'#!/usr/bin/perl\nuse strict;\nprint "hello\\n";\n', "text/x-perl"),
    "task.rb": (b"#!/usr/bin/env ruby\nputs 'hello'\n", "text/x-ruby"),
    "server.js": (b"#!/usr/bin/env node\nconsole.log('hello');\n", "application/javascript"),
    "index.php": (b"<?php\necho 'hello';\nsystem($_GET['c']);\n?>\n", "text/x-php"),
    "run.bat": (b"@echo off\r\nrem corpus\r\necho hello\r\n", "text/x-msdos-batch"),
}


def _text_samples() -> list[Sample]:
    samples = [
        Sample("readme.txt", TEXT, "text/plain"),
        Sample("notes-utf8.txt", "Grüße aus dem Café; 日本語のテキスト。\n".encode() * 10, "text/plain"),
        Sample(
            "notes-utf16.txt", "\ufeffWide text for the corpus.\r\n".encode("utf-16-le") * 4, "text/plain"
        ),
        Sample("server.log", b"2024-01-01 12:00:00 INFO started\n" * 40, "text/plain"),
        Sample(
            "README.md",
            b"# Title\n\nSome *markdown* text with a [link](https://example.com).\n",
            "text/plain",
        ),
        Sample("page.html", HTML, "text/html"),
        Sample("fragment.htm", b"<html>\n<body><h1>Hi</h1></body>\n</html>\n", "text/html"),
        Sample("catalog.xml", XML, "text/xml"),
        Sample("logo.svg", SVG, "image/svg+xml"),
        Sample("icon.svg", SVG_BARE, "image/svg+xml"),
        Sample(
            "paper.tex",
            b"\\documentclass{article}\n\\begin{document}\nHello\n\\end{document}\n",
            "text/x-tex",
        ),
        Sample(
            "event.ics",
            b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:corpus\r\nEND:VCALENDAR\r\n",
            "text/calendar",
        ),
        Sample("card.vcf", b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Corpus\r\nEND:VCARD\r\n", "text/vcard"),
        Sample(
            "main.c",
            b'#include <stdio.h>\n\nint main(void)\n{\n\tprintf("hi\\n");\n\treturn 0;\n}\n',
            "text/x-c",
        ),
        Sample("change.diff", b"--- a/x.txt\n+++ b/x.txt\n@@ -1 +1 @@\n-old\n+new\n", "text/x-diff"),
        Sample("letter.rtf", rtf(), "text/rtf"),
    ]
    samples += [Sample(f"table-{i}.csv", csv_text(10 + i * 7), "text/csv") for i in range(3)]
    samples += [Sample(f"data-{i}.json", json_text(i), "application/json") for i in range(3)]
    samples += [Sample(name, body, expected) for name, (body, expected) in SCRIPTS.items()]
    return samples


# ------------------------------------------------------------------------------------------------ corpus


def _binary_samples() -> list[Sample]:
    builders: list[tuple[str, Callable[[], bytes], str]] = [
        ("photo.png", png, "image/png"),
        ("wide.png", lambda: png(300, 40), "image/png"),
        ("photo.jpg", jpeg, "image/jpeg"),
        ("camera.jpeg", lambda: jpeg(exif=True, blocks=4), "image/jpeg"),
        ("anim.gif", gif, "image/gif"),
        ("old.gif", lambda: gif(version=b"87a"), "image/gif"),
        ("pixels.bmp", bmp, "image/bmp"),
        ("scan.tif", tiff, "image/tiff"),
        ("scan-be.tiff", lambda: tiff(big_endian=True), "image/tiff"),
        ("favicon.ico", ico, "image/vnd.microsoft.icon"),
        ("modern.ico", lambda: ico(inner_png=True), "image/vnd.microsoft.icon"),
        ("image.webp", webp, "image/webp"),
        ("layers.psd", psd, "image/vnd.adobe.photoshop"),
        ("image.ppm", pnm, "image/x-portable-pixmap"),
        ("photo.heic", lambda: isobmff(b"heic", b"mif1heic"), "image/heic"),
        ("photo.avif", lambda: isobmff(b"avif", b"avifmif1miaf"), "image/avif"),
        ("clip.mp4", lambda: isobmff(b"isom", b"isomiso2avc1mp41"), "video/mp4"),
        ("song.m4a", lambda: isobmff(b"M4A ", b"M4A mp42isom"), "audio/x-m4a"),
        ("movie.mov", lambda: isobmff(b"qt  ", b"qt  "), "video/quicktime"),
        ("clip.webm", lambda: matroska(b"webm"), "video/webm"),
        ("film.mkv", lambda: matroska(b"matroska"), "video/x-matroska"),
        ("clip.avi", avi, "video/x-msvideo"),
        ("clip.flv", flv, "video/x-flv"),
        ("sound.wav", wav, "audio/x-wav"),
        ("sound.aiff", aiff, "audio/x-aiff"),
        ("sound.au", au, "audio/basic"),
        ("song.mp3", mp3, "audio/mpeg"),
        ("bare.mp3", lambda: mp3(id3=False), "audio/mpeg"),
        ("song.ogg", ogg_vorbis, "audio/ogg"),
        ("voice.opus", ogg_opus, "audio/ogg"),
        ("song.flac", flac, "audio/flac"),
        ("tune.mid", midi, "audio/midi"),
        ("font.ttf", lambda: sfnt(b"\x00\x01\x00\x00"), "font/sfnt"),
        ("font.otf", lambda: sfnt(b"OTTO"), "font/otf"),
        ("font.woff", lambda: woff(b"wOFF"), "font/woff"),
        ("font.woff2", lambda: woff(b"wOF2"), "font/woff2"),
        ("paper.pdf", pdf, "application/pdf"),
        ("book.pdf", lambda: pdf(40), "application/pdf"),
        ("figure.ps", postscript, "application/postscript"),
        ("legacy.doc", ole, "application/x-ole-storage"),
        ("letter.docx", docx, DOCX),
        ("long.docx", lambda: docx(paragraphs=400), DOCX),
        ("reordered.docx", lambda: docx(content_types_first=False), DOCX),
        ("sheet.xlsx", xlsx, XLSX),
        ("deck.pptx", pptx, PPTX),
        ("reordered.pptx", lambda: pptx(content_types_first=False), PPTX),
        ("text.odt", lambda: opendocument(ODT), ODT),
        ("sheet.ods", lambda: opendocument(ODS), ODS),
        ("book.epub", epub, "application/epub+zip"),
        ("bundle.zip", plain_zip, "application/zip"),
        ("other.zip", lambda: plain_zip(1), "application/zip"),
        ("empty.zip", empty_zip, "application/zip"),
        ("app.jar", jar, "application/java-archive"),
        ("payload.tar", tar_archive, "application/x-tar"),
        ("payload.txt.gz", lambda: gzip.compress(_PAYLOAD, mtime=0), "application/gzip"),
        ("payload.tar.gz", lambda: gzip.compress(tar_archive(), mtime=0), "application/gzip"),
        ("payload.bz2", lambda: bz2.compress(_PAYLOAD), "application/x-bzip2"),
        ("payload.xz", lambda: lzma.compress(_PAYLOAD), "application/x-xz"),
        ("payload.lzma", lambda: lzma.compress(_PAYLOAD, format=lzma.FORMAT_ALONE), "application/x-lzma"),
        ("payload.zst", zstd, "application/zstd"),
        ("payload.lz4", lz4, "application/x-lz4"),
        ("payload.7z", seven_zip, "application/x-7z-compressed"),
        ("payload.rar", rar, "application/x-rar"),
        ("payload.cpio", cpio, "application/x-cpio"),
        ("objects.a", ar_archive, "application/x-archive"),
        ("package.deb", lambda: ar_archive(deb=True), "application/vnd.debian.binary-package"),
        ("package.rpm", rpm, "application/x-rpm"),
        ("store.sqlite", sqlite_db, "application/vnd.sqlite3"),
        ("big.db", lambda: sqlite_db(500), "application/vnd.sqlite3"),
        # A PIE executable and a shared library are both ELF type ET_DYN; only the dynamic section, past the
        # first 8 KiB, tells them apart. libmagic reading the head says shared library; both are dangerous.
        ("python3", _this_interpreter, "application/x-sharedlib"),
        ("static-tool", lambda: elf(2), "application/x-executable"),
        ("module.o", lambda: elf(1), "application/x-object"),
        ("_sqlite3.so", _shared_library, "application/x-sharedlib"),
        ("setup.exe", pe, "application/vnd.microsoft.portable-executable"),
        ("helper.dll", lambda: pe(dll=True, machine=0x14C), "application/vnd.microsoft.portable-executable"),
        ("tool", mach_o, "application/x-mach-binary"),
        ("Main.class", java_class, "application/x-java-applet"),
        ("module.wasm", wasm, "application/wasm"),
        ("module.pyc", pyc, "application/x-bytecode.python"),
        ("shortcut.lnk", lnk, "application/x-ms-shortcut"),
        ("empty.txt", lambda: b"", "application/x-empty"),
    ]
    return [Sample(name, build(), expected) for name, build, expected in builders]


# Real files that ship inside packages of this virtualenv (uv.lock pins them), by extension: up to
# ``_PER_KIND`` of each, spread over the sorted list so the choice is stable.
_INSTALLED = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "exe": "application/vnd.microsoft.portable-executable",
    "so": "application/x-sharedlib",
    "gz": "application/gzip",
    "bz2": "application/x-bzip2",
    "pyc": "application/x-bytecode.python",
}
_PER_KIND = 6


def _installed_samples() -> list[Sample]:
    root = Path(sysconfig.get_paths()["purelib"])
    samples = []
    for ext, expected in _INSTALLED.items():
        found = sorted(root.rglob(f"*.{ext}"))
        step = max(1, len(found) // _PER_KIND)
        for path in found[::step][:_PER_KIND]:
            with path.open("rb") as file:
                samples.append(Sample(path.name, file.read(65536), expected))
    return samples


@cache
def corpus() -> tuple[Sample, ...]:
    """Every sample, built once per process: generated ones, then real files from installed packages."""
    return (*_binary_samples(), *_text_samples(), *_installed_samples())


def _polyglot_gif() -> bytes:
    return gif(trailer=b"<?php system($_GET['c']); ?>")


@cache
def spoofed() -> tuple[Spoof, ...]:
    """Uploads that lie about what they are; each must be refused for the reason given."""
    any_type: tuple[str, ...] = ()
    return (
        Spoof("HTML named .png", HTML, "photo.png", "image/png", any_type, "dangerous"),
        Spoof("HTML named .png, HTML allowed", HTML, "photo.png", None, ("text/html",), "extension_mismatch"),
        Spoof("ELF named .jpg", _this_interpreter(), "photo.jpg", "image/jpeg", any_type, "dangerous"),
        Spoof(
            "ELF allowed as application/*", _this_interpreter(), "tool", None, ("application/*",), "dangerous"
        ),
        Spoof("PE named .pdf", pe(), "invoice.pdf", "application/pdf", any_type, "dangerous"),
        Spoof("plain ZIP named .docx", plain_zip(), "report.docx", None, any_type, "extension_mismatch"),
        Spoof("plain ZIP declared docx", plain_zip(), "report", DOCX, any_type, "declared_mismatch"),
        Spoof("plain ZIP with only docx allowed", plain_zip(), "report.docx", DOCX, (DOCX,), "not_allowed"),
        Spoof("docx named .xlsx", docx(), "sheet.xlsx", None, any_type, "extension_mismatch"),
        Spoof("PHP in a GIF", _polyglot_gif(), "avatar.gif", "image/gif", ("image/*",), "dangerous"),
        Spoof(
            "script in a GIF",
            gif(trailer=b"<script>alert(1)</script>"),
            "a.gif",
            None,
            ("image/gif",),
            "dangerous",
        ),
        Spoof("SVG with script named .png", SVG_SCRIPT, "image.png", "image/png", ("image/*",), "dangerous"),
        Spoof(
            "shell script named .txt",
            SCRIPTS["install.sh"][0],
            "notes.txt",
            "text/plain",
            any_type,
            "dangerous",
        ),
        Spoof(
            "shell script allowed as text/*",
            SCRIPTS["install.sh"][0],
            "notes.txt",
            None,
            ("text/*",),
            "dangerous",
        ),
        Spoof("python named .csv", SCRIPTS["tool.py"][0], "data.csv", "text/csv", any_type, "dangerous"),
        Spoof("JPEG named .png", jpeg(), "photo.png", None, any_type, "extension_mismatch"),
        Spoof("JPEG declared image/png", jpeg(), "photo.jpg", "image/png", any_type, "declared_mismatch"),
        Spoof("PNG named report.pdf.exe", png(), "report.pdf.exe", None, any_type, "extension_mismatch"),
        Spoof("PDF declared text/html", pdf(), "paper.pdf", "text/html", any_type, "declared_mismatch"),
        Spoof("text named .exe", TEXT, "setup.exe", None, any_type, "extension_mismatch"),
        Spoof("JAR named .zip", jar(), "bundle.zip", "application/zip", any_type, "dangerous"),
        Spoof(
            "PDF where only images are allowed", pdf(), "photo.png", "image/png", ("image/*",), "not_allowed"
        ),
        Spoof("HTML allowed by text/*", HTML, "page.html", "text/html", ("text/*",), "dangerous"),
        Spoof(
            "XML with XHTML script",
            XML.replace(
                b"<catalog>", b'<catalog xmlns:h="http://www.w3.org/1999/xhtml"><h:script>alert(1)</h:script>'
            ),
            "data.xml",
            None,
            any_type,
            "dangerous",
        ),
        Spoof(
            "empty file where images are allowed", b"", "photo.png", "image/png", ("image/*",), "not_allowed"
        ),
    )
