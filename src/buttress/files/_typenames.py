"""The type vocabulary of ``buttress.files``: canonical names, extensions, families, the dangerous set.

Two detectors (libmagic, filetype), Python's ``mimetypes``, browsers and clients all name the same format
differently (``image/x-icon`` and ``image/vnd.microsoft.icon``, ``audio/wav`` and ``audio/x-wav``).
Every name is mapped to one canonical spelling (libmagic 5.44's, the primary detector's) before any
comparison, so an allow-list, an extension and a declared ``Content-Type`` all speak the same language.
"""

from __future__ import annotations

import mimetypes

__all__ = [
    "APK",
    "DANGEROUS",
    "DOCM",
    "DOCX",
    "EMPTY",
    "JAR",
    "OCTET_STREAM",
    "PE",
    "PPTM",
    "PPTX",
    "XLSM",
    "XLSX",
    "canonical",
    "compatible",
    "is_dangerous",
    "is_data_text",
    "type_of_extension",
]

OCTET_STREAM = "application/octet-stream"
EMPTY = "application/x-empty"

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
DOCM = "application/vnd.ms-word.document.macroenabled.12"
XLSM = "application/vnd.ms-excel.sheet.macroenabled.12"
PPTM = "application/vnd.ms-powerpoint.presentation.macroenabled.12"
PE = "application/vnd.microsoft.portable-executable"
JAR = "application/java-archive"
APK = "application/vnd.android.package-archive"

_ALIASES: dict[str, tuple[str, ...]] = {
    "image/jpeg": ("image/jpg", "image/pjpeg", "image/jpe"),
    "image/png": ("image/x-png", "image/apng"),
    "image/bmp": ("image/x-bmp", "image/x-ms-bmp"),
    "image/vnd.microsoft.icon": ("image/x-icon", "image/ico", "image/icon"),
    "image/svg+xml": ("image/svg",),
    "image/vnd.adobe.photoshop": (
        "image/psd",
        "image/x-photoshop",
        "application/x-photoshop",
        "application/photoshop",
    ),
    "audio/x-wav": ("audio/wav", "audio/wave", "audio/vnd.wave"),
    "audio/mpeg": ("audio/mp3", "audio/x-mp3", "audio/x-mpeg", "audio/mpeg3"),
    "audio/flac": ("audio/x-flac",),
    "audio/x-m4a": ("audio/mp4", "audio/m4a"),
    "audio/x-aiff": ("audio/aiff",),
    "audio/midi": ("audio/x-midi", "audio/mid"),
    "video/x-msvideo": ("video/avi", "video/msvideo"),
    "video/x-matroska": ("video/mkv", "video/matroska"),
    "font/sfnt": (
        "font/ttf",
        "application/font-sfnt",
        "application/x-font-ttf",
        "application/x-font-truetype",
    ),
    "font/otf": ("application/vnd.ms-opentype", "application/x-font-otf", "application/font-otf"),
    "font/woff": ("application/font-woff", "application/x-font-woff"),
    "application/zip": ("application/x-zip-compressed", "application/x-zip", "application/zip-compressed"),
    "application/gzip": ("application/x-gzip", "application/gzip-compressed"),
    "application/x-bzip2": ("application/bzip2", "application/x-bzip"),
    "application/x-rar": ("application/x-rar-compressed", "application/vnd.rar"),
    "application/zstd": ("application/x-zstd",),
    "application/x-tar": ("application/x-gtar", "application/x-ustar"),
    "application/x-archive": ("application/x-unix-archive",),
    "application/vnd.sqlite3": ("application/x-sqlite3", "application/vnd.sqlite", "application/x-sqlite"),
    "application/vnd.debian.binary-package": ("application/x-deb", "application/x-debian-package"),
    PE: (
        "application/x-msdownload",
        "application/x-ms-dos-executable",
        "application/x-exe",
        "application/exe",
        "application/x-winexe",
        "application/x-msdos-program",
    ),
    JAR: ("application/x-java-archive", "application/jar"),
    "application/x-java-applet": ("application/java-vm", "application/x-java-class", "application/x-java-vm"),
    "application/x-mach-binary": ("application/x-mach-o-executable", "application/x-mach-o"),
    "application/x-bytecode.python": ("application/x-python-code", "application/x-python-bytecode"),
    "application/x-msi": ("application/x-ms-installer", "application/x-windows-installer"),
    "application/wasm": ("application/x-wasm",),
    "application/pdf": ("application/x-pdf",),
    "application/x-empty": ("inode/x-empty",),
    # What clients send when they do not know: S3 tools, download managers, old browsers.
    OCTET_STREAM: (
        "binary/octet-stream",
        "application/unknown",
        "application/x-unknown",
        "application/force-download",
        "application/download",
    ),
    "text/x-shellscript": ("text/x-sh", "application/x-sh", "application/x-shellscript", "text/x-bash"),
    "text/x-script.python": (
        "text/x-python",
        "text/x-python3",
        "application/x-python",
        "text/python",
        "application/x-python-script",
    ),
    "text/x-perl": ("application/x-perl", "text/x-script.perl"),
    "text/x-ruby": ("application/x-ruby", "text/x-script.ruby"),
    "text/x-php": ("application/x-php", "application/x-httpd-php", "application/php"),
    "text/x-msdos-batch": ("application/x-bat", "application/bat", "application/x-msdos-batch", "text/x-bat"),
    "application/javascript": (
        "text/javascript",
        "application/x-javascript",
        "text/ecmascript",
        "application/ecmascript",
    ),
    "text/xml": ("application/xml",),
    "text/x-powershell": ("application/x-powershell",),
    "text/vbscript": ("application/x-vbscript", "text/x-vbscript"),
    "text/rtf": ("application/rtf", "application/x-rtf"),
    "text/vcard": ("text/x-vcard", "text/directory"),
    "text/x-tex": ("application/x-tex",),
    "text/csv": ("text/x-csv", "application/csv", "text/comma-separated-values"),
    "text/markdown": ("text/x-markdown",),
    "application/json": ("text/json", "application/x-json"),
    "application/yaml": ("application/x-yaml", "text/yaml", "text/x-yaml"),
}
_CANONICAL = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}

DANGEROUS: frozenset[str] = frozenset(
    {
        # Native code of every OS, and installers that run scripts as they install.
        "application/x-executable",
        "application/x-pie-executable",
        "application/x-sharedlib",
        "application/x-object",
        "application/x-mach-binary",
        PE,
        "application/x-dosexec",
        "application/x-msi",
        "application/x-ms-shortcut",
        "application/x-ms-ne-executable",
        "application/x-coff",
        "application/x-coffexec",
        "application/vnd.debian.binary-package",
        "application/x-rpm",
        # Byte code a runtime loads: Java, Android, Python, WebAssembly, Flash.
        "application/x-java-applet",
        JAR,
        APK,
        "application/x-bytecode.python",
        "application/wasm",
        "application/x-shockwave-flash",
        # Scripts.
        "text/x-shellscript",
        "text/x-script.python",
        "text/x-perl",
        "text/x-ruby",
        "text/x-php",
        "text/x-msdos-batch",
        "application/javascript",
        "text/x-gawk",
        "text/x-nawk",
        "text/x-lua",
        "text/x-tcl",
        "text/x-awk",
        "text/vbscript",
        "text/x-powershell",
        "application/hta",
        # Markup a browser renders with script when it is served: HTML, XHTML, SVG, XML (an XHTML-namespaced
        # <script> runs in any XML document), XSLT.
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "text/xsl",
        "application/xslt+xml",
        # Office documents with macros.
        DOCM,
        XLSM,
        PPTM,
    }
)
"""Types accepted only when an allow-list names them exactly (a wildcard, or an empty list, never does).

The rule for membership: content that runs, or makes a browser run script, when it is opened or served
by type. Native executables and libraries, installers, byte code, scripts, HTML/SVG/XML and macro-enabled
Office files are in. Documents whose viewers sandbox or ask first (PDF, Office without macros, images,
media, archives) are out: they are most uploads, and an allow-list narrows them when an app wants less.
"""

_DANGEROUS_PREFIXES = ("text/x-script.",)  # libmagic names every interpreter it knows this way

# Extensions mapped by hand: Python's built-in table lacks many (docx, woff2, 7z...) and maps some to what
# a spoofer wants (.exe, .dll and .so to application/octet-stream, which would mean "anything goes").
_EXTENSIONS: dict[str, str] = {
    **dict.fromkeys(("jpg", "jpeg", "jpe", "jfif"), "image/jpeg"),
    "png": "image/png",
    "gif": "image/gif",
    **dict.fromkeys(("bmp", "dib"), "image/bmp"),
    **dict.fromkeys(("tif", "tiff"), "image/tiff"),
    "ico": "image/vnd.microsoft.icon",
    "webp": "image/webp",
    "psd": "image/vnd.adobe.photoshop",
    **dict.fromkeys(("heic", "heif"), "image/heic"),
    "avif": "image/avif",
    "svg": "image/svg+xml",
    "ppm": "image/x-portable-pixmap",
    "pgm": "image/x-portable-greymap",
    "pbm": "image/x-portable-bitmap",
    **dict.fromkeys(("txt", "text", "log", "ini", "cfg", "conf"), "text/plain"),
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    **dict.fromkeys(("md", "markdown"), "text/markdown"),
    **dict.fromkeys(("yaml", "yml"), "application/yaml"),
    "toml": "application/toml",
    "ics": "text/calendar",
    "vcf": "text/vcard",
    "tex": "text/x-tex",
    **dict.fromkeys(("c", "h"), "text/x-c"),
    **dict.fromkeys(("diff", "patch"), "text/x-diff"),
    "rtf": "text/rtf",
    **dict.fromkeys(("html", "htm", "shtml"), "text/html"),
    **dict.fromkeys(("xhtml", "xht"), "application/xhtml+xml"),
    **dict.fromkeys(("xml", "xsd", "rss", "atom"), "text/xml"),
    **dict.fromkeys(("xsl", "xslt"), "text/xsl"),
    **dict.fromkeys(("sh", "bash", "zsh", "ksh", "csh", "command"), "text/x-shellscript"),
    **dict.fromkeys(("py", "pyw"), "text/x-script.python"),
    **dict.fromkeys(("pl", "pm"), "text/x-perl"),
    "rb": "text/x-ruby",
    **dict.fromkeys(("php", "phtml", "php3", "php4", "php5", "php7", "phar"), "text/x-php"),
    **dict.fromkeys(("bat", "cmd"), "text/x-msdos-batch"),
    **dict.fromkeys(("js", "mjs", "cjs"), "application/javascript"),
    **dict.fromkeys(("ps1", "psm1", "psd1"), "text/x-powershell"),
    **dict.fromkeys(("vbs", "vbe", "wsf"), "text/vbscript"),
    "hta": "application/hta",
    "lua": "text/x-lua",
    "tcl": "text/x-tcl",
    "awk": "text/x-awk",
    **dict.fromkeys(("exe", "dll", "sys", "scr", "cpl", "ocx", "efi", "com", "pif"), PE),
    "msi": "application/x-msi",
    "lnk": "application/x-ms-shortcut",
    "so": "application/x-sharedlib",
    "o": "application/x-object",
    "elf": "application/x-executable",
    "jar": JAR,
    "war": JAR,
    "ear": JAR,
    "class": "application/x-java-applet",
    "apk": APK,
    **dict.fromkeys(("pyc", "pyo"), "application/x-bytecode.python"),
    "wasm": "application/wasm",
    "swf": "application/x-shockwave-flash",
    "deb": "application/vnd.debian.binary-package",
    "rpm": "application/x-rpm",
    "zip": "application/zip",
    **dict.fromkeys(("gz", "tgz"), "application/gzip"),
    **dict.fromkeys(("bz2", "tbz", "tbz2"), "application/x-bzip2"),
    **dict.fromkeys(("xz", "txz"), "application/x-xz"),
    "lzma": "application/x-lzma",
    "zst": "application/zstd",
    "lz4": "application/x-lz4",
    "7z": "application/x-7z-compressed",
    "rar": "application/x-rar",
    "tar": "application/x-tar",
    "cpio": "application/x-cpio",
    **dict.fromkeys(("a", "ar"), "application/x-archive"),
    "docx": DOCX,
    "xlsx": XLSX,
    "pptx": PPTX,
    "docm": DOCM,
    "xlsm": XLSM,
    "pptm": PPTM,
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "epub": "application/epub+zip",
    "doc": "application/msword",
    "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "pdf": "application/pdf",
    **dict.fromkeys(("ps", "eps"), "application/postscript"),
    "wav": "audio/x-wav",
    **dict.fromkeys(("mp3", "mpga"), "audio/mpeg"),
    **dict.fromkeys(("ogg", "oga", "opus", "spx"), "audio/ogg"),
    "ogv": "video/ogg",
    "flac": "audio/flac",
    **dict.fromkeys(("mid", "midi"), "audio/midi"),
    **dict.fromkeys(("aif", "aiff", "aifc"), "audio/x-aiff"),
    **dict.fromkeys(("au", "snd"), "audio/basic"),
    "m4a": "audio/x-m4a",
    "mp4": "video/mp4",
    "m4v": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "mkv": "video/x-matroska",
    "avi": "video/x-msvideo",
    "flv": "video/x-flv",
    "3gp": "video/3gpp",
    "ttf": "font/sfnt",
    "otf": "font/otf",
    "woff": "font/woff",
    "woff2": "font/woff2",
    **dict.fromkeys(("sqlite", "sqlite3"), "application/vnd.sqlite3"),
}

# Types that are the same format for our purpose: a name or declared type in a family accepts content of
# any member (libmagic cannot always tell the members apart from the first bytes).
_FAMILIES: tuple[frozenset[str], ...] = (
    frozenset({"application/x-executable", "application/x-pie-executable", "application/x-sharedlib"}),
    frozenset({PE, "application/x-dosexec"}),
    frozenset(
        {
            "application/x-ole-storage",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.ms-outlook",
        }
    ),
    frozenset({"audio/ogg", "video/ogg", "application/ogg"}),
    frozenset({"video/mp4", "audio/x-m4a", "video/x-m4v", "video/quicktime", "video/3gpp", "video/3gpp2"}),
    frozenset({"video/webm", "audio/webm", "video/x-matroska", "audio/x-matroska"}),
    frozenset({"image/heic", "image/heif", "image/heic-sequence", "image/heif-sequence"}),
    frozenset({"font/sfnt", "font/otf", "font/collection"}),
    frozenset(
        {
            "image/x-portable-pixmap",
            "image/x-portable-greymap",
            "image/x-portable-bitmap",
            "image/x-portable-anymap",
        }
    ),
)
_FAMILY_OF = {member: family for family in _FAMILIES for member in family}

# ZIP is the container of these: a name or declared type of ZIP accepts them, never the other way round
# (a plain ZIP called .docx is the attack python-magic#217 and filetype#171 let through).
_ZIP_BASED = frozenset(
    {
        DOCX,
        XLSX,
        PPTX,
        DOCM,
        XLSM,
        PPTM,
        JAR,
        APK,
        "application/epub+zip",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/vnd.oasis.opendocument.graphics",
    }
)

# Plain data text beyond text/*: a .txt, .csv or .json name accepts any of these and any harmless text/*.
_DATA_TEXT = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/yaml",
        "application/toml",
        "application/sql",
        "application/x-wine-extension-ini",  # libmagic's name for some .ini files
    }
)
_NOT_DATA_TEXT = frozenset({"text/rtf"})  # RTF embeds OLE objects; a .txt name must not hide one

# Windows browsers send what the registry says: with Excel installed, a .csv goes as application/vnd.ms-excel.
_DECLARED_EXTRA: dict[str, frozenset[str]] = {
    "application/vnd.ms-excel": frozenset({"text/csv", "text/plain"}),
}

_MIMETYPES = mimetypes.MimeTypes()  # Python's built-in table only, not this machine's /etc/mime.types


def canonical(content_type: str) -> str:
    """The canonical spelling of a type: lower-case, parameters dropped, aliases resolved."""
    name = content_type.split(";", 1)[0].strip().lower()
    return _CANONICAL.get(name, name)


def is_dangerous(content_type: str) -> bool:
    """Whether ``content_type`` (canonical) is in :data:`DANGEROUS` or names a script interpreter."""
    return content_type in DANGEROUS or content_type.startswith(_DANGEROUS_PREFIXES)


def type_of_extension(ext: str) -> str | None:
    """The canonical type an extension (no dot, lower-case) claims, or None when it claims nothing."""
    if not ext:
        return None
    found = _EXTENSIONS.get(ext)
    if found is None:
        found = _MIMETYPES.types_map[True].get("." + ext) or _MIMETYPES.types_map[False].get("." + ext)
    if found is None:
        return None
    found = canonical(found)
    return None if found == OCTET_STREAM else found


def is_data_text(content_type: str) -> bool:
    """Plain text with no active content: text/* but scripts, markup and RTF, plus JSON, YAML, TOML."""
    if content_type in _DATA_TEXT:
        return True
    return (
        content_type.startswith("text/")
        and not is_dangerous(content_type)
        and content_type not in _NOT_DATA_TEXT
    )


def compatible(claimed: str, detected: str, *, declared: bool = False) -> bool:
    """Whether content of type ``detected`` may carry the ``claimed`` type (an extension's or a client's).

    Equal types, members of one family, a ZIP claim for ZIP-based content, and two harmless texts agree.
    A dangerous claim needs that very type (or its family): a ``.bat`` or ``.msi`` name on content that
    does not look like one is refused, since a desktop would run it by that name. ``declared`` adds what
    browsers are known to send for a harmless type (application/vnd.ms-excel for CSV).
    """
    if claimed == detected:
        return True
    family = _FAMILY_OF.get(claimed)
    if family is not None and detected in family:
        return True
    if is_dangerous(claimed):
        return False
    if claimed == "application/zip" and detected in _ZIP_BASED:
        return True
    if is_data_text(claimed) and is_data_text(detected):
        return True
    return declared and detected in _DECLARED_EXTRA.get(claimed, frozenset())
