"""safe_name and extension: each OWASP File Upload Cheat Sheet rule on names, then properties."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from buttress.errors import ValidationError
from buttress.files._names import MAX_NAME_BYTES, extension, safe_name

# ------------------------------------------------------------------ OWASP: restrict the name to a file name


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("../../../../var/www/html/shell.php", "shell.php"),
        ("uploads/../../secret.txt", "secret.txt"),
        ("..", "file"),
        ("../", "file"),
    ],
)
def test_owasp_path_traversal_with_slashes_keeps_only_the_base_name(original: str, expected: str) -> None:
    assert safe_name(original) == expected


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("..\\..\\..\\boot.ini", "boot.ini"),
        ("a/b\\c/..\\d.txt", "d.txt"),
    ],
)
def test_owasp_path_traversal_with_backslashes_keeps_only_the_base_name(original: str, expected: str) -> None:
    assert safe_name(original) == expected


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("/etc/shadow", "shadow"),
        ("C:\\Windows\\System32\\drivers\\etc\\hosts", "hosts"),
        ("\\\\server\\share\\payload.exe", "payload.exe"),
        ("C:relative.txt", "C_relative.txt"),
        ("file:///etc/passwd", "passwd"),
    ],
)
def test_owasp_absolute_paths_drive_letters_and_unc_shares_are_cut_to_the_name(
    original: str, expected: str
) -> None:
    assert safe_name(original) == expected


def test_owasp_full_width_separators_cannot_smuggle_a_traversal_past_normalisation() -> None:
    # U+FF0E FULLWIDTH FULL STOP and U+FF0F FULLWIDTH SOLIDUS fold to "." and "/" under NFKC.
    assert safe_name("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc\uff0fpasswd") == "passwd"
    assert safe_name("a\uff3cb.txt") == "b.txt"  # FULLWIDTH REVERSE SOLIDUS


# ------------------------------------------------------------------------ OWASP: NUL and control characters


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("shell.php\x00.png", "shell.php.png"),
        ("\x00\x00\x00", "file"),
        ("report\x00", "report"),
    ],
)
def test_owasp_nul_byte_injection_is_removed(original: str, expected: str) -> None:
    assert safe_name(original) == expected
    assert "\x00" not in safe_name(original)


@pytest.mark.parametrize(
    "control", ["\x01", "\x07", "\x08", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]
)
def test_owasp_control_characters_c0_c1_del_and_line_separators_are_removed(control: str) -> None:
    assert safe_name(f"log{control}file{control}.txt") == "logfile.txt"


def test_owasp_header_and_log_injection_through_a_newline_is_defused() -> None:
    name = safe_name('a.txt"\r\nContent-Type: text/html\r\n\r\n<script>')
    assert "\r" not in name
    assert "\n" not in name
    assert '"' not in name


@pytest.mark.parametrize(
    "invisible",
    [
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200b",
        "\u200c",
        "\u200d",
        "\u200e",
        "\u200f",
        "\ufeff",
        "\u00ad",
        "\U000e0041",
    ],
)
def test_owasp_bidi_overrides_and_invisible_format_characters_are_removed(invisible: str) -> None:
    assert safe_name(f"invoice{invisible}.pdf") == "invoice.pdf"


def test_owasp_right_to_left_override_cannot_disguise_an_executable() -> None:
    # Shown as "photo_gnp.exe" reversed: "photo_exe.png" to a human, an .exe to Windows.
    name = safe_name("photo_\u202egnp.exe")
    assert name == "photo_gnp.exe"
    assert extension(name) == "exe"


# ------------------------------------------------------------------------------- OWASP: Unicode normalisation


def test_owasp_unicode_normalisation_composes_decomposed_letters() -> None:
    decomposed = "cafe\u0301.txt"  # e + COMBINING ACUTE ACCENT, as macOS writes names
    assert safe_name(decomposed) == "caf\u00e9.txt"
    assert safe_name(decomposed) == safe_name("caf\u00e9.txt")


def test_owasp_unicode_normalisation_folds_full_width_look_alikes() -> None:
    assert safe_name("\uff52\uff45\uff50\uff4f\uff52\uff54\uff0e\uff50\uff44\uff46") == "report.pdf"
    assert extension(safe_name("x.\uff50\uff48\uff50")) == "php"


def test_owasp_unicode_normalisation_unusual_spaces_become_plain_spaces() -> None:
    assert safe_name("a\u00a0b\u3000c\u2003d.txt") == "a b c d.txt"
    assert safe_name("\u3000\u3000.txt\u3000") == "txt"


def test_owasp_forbidden_windows_characters_become_underscores() -> None:
    assert safe_name('a<b>c:d"e|f?g*h.txt') == "a_b_c_d_e_f_g_h.txt"
    assert safe_name("\uff1cscript\uff1e.txt") == "_script_.txt"  # full-width < and > fold first


# ----------------------------------------------------------------------------------- OWASP: reserved names


@pytest.mark.parametrize(
    "reserved",
    ["CON", "con", "Prn", "AUX", "NUL", "COM1", "com9", "LPT1", "lpt9", "COM0", "LPT0", "CONIN$", "conout$"],
)
def test_owasp_windows_reserved_device_names_are_prefixed(reserved: str) -> None:
    assert safe_name(reserved) == "_" + reserved
    assert safe_name(reserved + ".txt") == "_" + reserved + ".txt"
    assert safe_name(reserved + ".tar.gz") == "_" + reserved + ".tar.gz"


def test_owasp_windows_reserved_names_with_superscripts_or_trailing_spaces_are_caught() -> None:
    assert safe_name("COM\u00b9.log") == "_COM1.log"  # COM¹ is a device too; NFKC makes it COM1
    assert safe_name("CON .txt") == "_CON .txt"  # Windows ignores the space before the dot
    assert safe_name("nul.") == "_nul"


@pytest.mark.parametrize(
    "ordinary", ["CONTRACT.pdf", "console.log", "auxiliary.txt", "COM10", "LPT", "nullable.py"]
)
def test_owasp_reserved_name_rule_leaves_ordinary_names_alone(ordinary: str) -> None:
    assert safe_name(ordinary) == ordinary


# ------------------------------------------------------------------------------------------ OWASP: length


def test_owasp_length_over_255_bytes_is_cut_keeping_the_extension() -> None:
    name = safe_name("a" * 400 + ".pdf")
    assert len(name.encode()) == MAX_NAME_BYTES
    assert name.endswith(".pdf")
    assert name == "a" * (MAX_NAME_BYTES - 4) + ".pdf"


def test_owasp_length_is_counted_in_utf8_bytes_and_never_splits_a_character() -> None:
    name = safe_name("\u00e9" * 200 + ".txt")  # 400 bytes of two-byte characters
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name.endswith(".txt")
    assert set(name[:-4]) == {"\u00e9"}
    emoji = safe_name("\U0001f600" * 100)  # four bytes each
    assert len(emoji.encode()) == 252
    assert emoji == "\U0001f600" * 63


def test_owasp_length_cut_of_a_giant_extension_cuts_the_whole_name() -> None:
    name = safe_name("x." + "b" * 400)
    assert len(name.encode()) == MAX_NAME_BYTES
    assert name.startswith("x.b")


def test_owasp_length_of_a_name_at_the_limit_is_kept_whole() -> None:
    exact = "n" * (MAX_NAME_BYTES - 4) + ".csv"
    assert safe_name(exact) == exact


# ---------------------------------------------------------------------------------- OWASP: double extension


def test_owasp_double_extension_is_kept_as_metadata_and_the_last_suffix_is_the_extension() -> None:
    # The name is never executed nor used to serve the bytes; TypeDetector.check compares the last
    # extension with the content, so "report.pdf.exe" holding a PDF is refused there.
    assert safe_name("report.pdf.exe") == "report.pdf.exe"
    assert extension("report.pdf.exe") == "exe"
    assert extension("shell.php.jpg") == "jpg"
    assert extension("archive.tar.gz") == "gz"


def test_owasp_double_extension_with_trailing_dots_and_spaces_cannot_hide_the_real_one() -> None:
    # Windows drops trailing dots and spaces: "shell.php. . " would be saved as shell.php.
    assert safe_name("shell.php. . ") == "shell.php"
    assert extension(safe_name("shell.asp.")) == "asp"


# ---------------------------------------------------------------------- OWASP: leading dot and hidden files


@pytest.mark.parametrize(
    ("original", "expected"),
    [(".htaccess", "htaccess"), (".bashrc", "bashrc"), ("...hidden.txt", "hidden.txt"), (" . .env", "env")],
)
def test_owasp_leading_dot_hidden_files_lose_their_dots(original: str, expected: str) -> None:
    assert safe_name(original) == expected


def test_owasp_leading_dot_exposed_by_a_removed_invisible_character_is_stripped_too() -> None:
    assert safe_name("\u200b.htaccess") == "htaccess"
    assert safe_name("\x00.\x00.env") == "env"


# ---------------------------------------------------------------------------------------- empty and default


@pytest.mark.parametrize("original", [None, "", "   ", "...", "/", "\\", "\x00", "\u202e\u200b", ". . ."])
def test_nothing_left_gives_the_default(original: str | None) -> None:
    assert safe_name(original) == "file"
    assert safe_name(original, default="upload.bin") == "upload.bin"


@pytest.mark.parametrize("bad", ["", "../x", ".hidden", "CON", "a\x00"])
def test_an_unsafe_default_is_a_validation_error_naming_default(bad: str) -> None:
    with pytest.raises(ValidationError) as caught:
        safe_name(None, default=bad)
    assert caught.value.field == "default"


def test_ordinary_names_are_untouched() -> None:
    for name in [
        "photo.jpg",
        "Quarterly Report (final) v2.xlsx",
        "日本語のファイル.txt",
        "naïve-résumé.pdf",
        "a b",
    ]:
        assert safe_name(name) == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.PNG", "png"),
        ("README", ""),
        (".bashrc", ""),
        ("file.", ""),
        ("dir.d/file", ""),
        ("x.tar.GZ", "gz"),
        ("dir\\a.txt", "txt"),
        ("", ""),
    ],
)
def test_extension_is_the_lower_case_last_suffix(name: str, expected: str) -> None:
    assert extension(name) == expected


# ---------------------------------------------------------------------------------------------- properties

_ANY_NAME = st.one_of(
    st.text(max_size=400),
    st.text(
        alphabet=st.sampled_from(list('./\\ \x00\t.\u202e\u200b\uff0e\uff0fCONcon1:<>*?|"é\u0301\U0001f600')),
        max_size=40,
    ),
    st.builds(
        lambda stem, ext: stem + "." + ext,
        st.text(min_size=200, max_size=300),
        st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=8),
    ),
)


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Zl", "Zp"}


@given(_ANY_NAME)
@example("e\u200b\u0301")
@example("\U0001f600" * 80 + ".\u0301")
@example(". \u200b.")
def test_property_the_result_is_never_empty_never_a_path_and_never_too_long(original: str) -> None:
    name = safe_name(original)
    assert name
    assert "/" not in name
    assert "\\" not in name
    assert "\x00" not in name
    assert not any(_is_control(ch) for ch in name)
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert not name.startswith((".", " "))
    assert not name.endswith((".", " "))
    assert name.split(".", 1)[0].rstrip(" ").upper() not in {"CON", "PRN", "AUX", "NUL"}


@given(_ANY_NAME)
@example("e\u200b\u0301")
@example("\u1100\u200b\u1161")  # Hangul jamo that compose once the zero-width space is gone
@example("a" * 252 + "\u0301.txt")
def test_property_safe_name_is_idempotent(original: str) -> None:
    once = safe_name(original)
    assert safe_name(once) == once


@given(_ANY_NAME)
def test_property_the_result_is_nfkc_normalised(original: str) -> None:
    name = safe_name(original)
    assert unicodedata.normalize("NFKC", name) == name
