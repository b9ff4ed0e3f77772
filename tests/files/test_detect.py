"""TypeDetector on a corpus of real files: accuracy, spoofed uploads, allow-lists, threads, the fallback."""

from __future__ import annotations

import threading
import zipfile
from collections import Counter
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buttress.errors import FileTypeRejected, ValidationError
from buttress.files._detect import HEAD_SIZE, TypeDetector, validate_allowed
from buttress.files._names import extension
from buttress.files._typenames import DANGEROUS, is_dangerous, is_data_text, type_of_extension
from tests.files import corpus as files
from tests.files.corpus import DOCX, Sample, Spoof, corpus, spoofed

ACCURACY = 0.99
FALLBACK_ACCURACY = 0.90


@pytest.fixture(scope="module")
def detector() -> TypeDetector:
    return TypeDetector()


@pytest.fixture(scope="module", params=["libmagic", "filetype"])
def any_detector(request: pytest.FixtureRequest) -> TypeDetector:
    return TypeDetector(engine=request.param)


def _rejection(detector: TypeDetector, data: bytes, **kwargs: object) -> FileTypeRejected:
    with pytest.raises(FileTypeRejected) as caught:
        detector.check(data, **{"name": None, "declared": None, "allowed": (), **kwargs})  # type: ignore[arg-type]
    return caught.value


def _accuracy(detector: TypeDetector, samples: tuple[Sample, ...]) -> tuple[float, list[str]]:
    misses = [
        f"{s.name}: {s.expected} -> {got}" for s in samples if (got := detector.detect(s.data)) != s.expected
    ]
    return 1 - len(misses) / len(samples), misses


# ------------------------------------------------------------------------------------------- the corpus


def test_the_corpus_holds_more_than_30_types_of_real_files() -> None:
    samples = corpus()
    kinds = Counter(sample.expected for sample in samples)
    assert len(kinds) >= 30, kinds
    assert len(samples) >= 100
    assert all(sample.data or sample.expected == "application/x-empty" for sample in samples)


def test_libmagic_detects_at_least_99_percent_of_the_corpus(detector: TypeDetector) -> None:
    assert detector.engine == "libmagic"
    accuracy, misses = _accuracy(detector, corpus())
    assert accuracy >= ACCURACY, misses


def test_the_filetype_fallback_detects_at_least_90_percent_of_the_corpus() -> None:
    fallback = TypeDetector(engine="filetype")
    assert fallback.engine == "filetype"
    assert fallback.version.startswith("filetype ")
    accuracy, misses = _accuracy(fallback, corpus())
    assert accuracy >= FALLBACK_ACCURACY, misses
    assert all("executable" not in miss and "python" not in miss for miss in misses), misses


@pytest.mark.parametrize("spoof", spoofed(), ids=lambda spoof: spoof.label)
def test_a_spoofed_upload_is_refused_for_the_right_reason(any_detector: TypeDetector, spoof: Spoof) -> None:
    error = _rejection(
        any_detector, spoof.data, name=spoof.name, declared=spoof.declared, allowed=spoof.allowed
    )
    assert error.context["reason"] == spoof.reason, str(error)


def test_no_spoofed_upload_is_accepted(any_detector: TypeDetector) -> None:
    accepted = []
    for spoof in spoofed():
        try:
            any_detector.check(spoof.data, name=spoof.name, declared=spoof.declared, allowed=spoof.allowed)
        except FileTypeRejected:
            continue
        accepted.append(spoof.label)
    assert accepted == []
    assert len(spoofed()) >= 20


def test_every_honest_corpus_file_is_accepted_under_its_name_and_a_browsers_declared_type(
    detector: TypeDetector,
) -> None:
    refused = []
    for sample in corpus():
        allowed = (sample.expected,) if is_dangerous(sample.expected) else ()
        declared = type_of_extension(extension(sample.name))
        expected = sample.expected
        if expected == "text/plain" and declared is not None and is_data_text(declared):
            expected = declared  # plain text named as a data format (.csv, .md) is that format
        try:
            assert (
                detector.check(sample.data, name=sample.name, declared=declared, allowed=allowed) == expected
            )
        except FileTypeRejected as error:
            refused.append(f"{sample.name}: {error}")
    assert refused == []


def test_detect_reads_only_the_first_8_kib(detector: TypeDetector) -> None:
    text = files.TEXT * (HEAD_SIZE // len(files.TEXT) + 1)
    assert detector.detect(text[:HEAD_SIZE] + files.HTML) == "text/plain"
    assert detector.detect(files.png() + b"\x00" * 100_000) == "image/png"


# --------------------------------------------------------------------------------------------- OOXML vs ZIP


def test_a_real_docx_is_accepted_as_docx(detector: TypeDetector) -> None:
    assert detector.check(files.docx(), name="letter.docx", declared=DOCX, allowed=(DOCX,)) == DOCX


def test_a_docx_whose_first_entry_is_not_content_types_is_found_in_its_local_headers(
    detector: TypeDetector,
) -> None:
    reordered = files.docx(content_types_first=False)
    assert zipfile.ZipFile(BytesIO(reordered)).namelist()[0] != "[Content_Types].xml"
    assert detector.detect(reordered) == DOCX
    assert detector.detect(files.pptx(content_types_first=False)) == files.PPTX


def test_a_plain_zip_named_or_declared_docx_is_refused(detector: TypeDetector) -> None:
    plain = files.plain_zip()
    assert detector.detect(plain) == "application/zip"
    assert _rejection(detector, plain, name="report.docx").context["reason"] == "extension_mismatch"
    assert _rejection(detector, plain, name="report", declared=DOCX).context["reason"] == "declared_mismatch"
    assert _rejection(detector, plain, name="report.zip", allowed=(DOCX,)).context["reason"] == "not_allowed"


def test_a_docx_may_be_called_a_zip_but_not_the_other_way_round(detector: TypeDetector) -> None:
    assert detector.check(files.docx(), name="letter.zip", declared="application/zip", allowed=()) == DOCX


def test_a_docx_with_macros_is_macro_enabled_and_dangerous(detector: TypeDetector) -> None:
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", b"<Types/>")
        archive.writestr("word/vbaProject.bin", b"\xd0\xcf\x11\xe0" + b"\x00" * 100)
        archive.writestr("word/document.xml", b"<w:document/>")
    detected = detector.detect(buffer.getvalue())
    assert detected == "application/vnd.ms-word.document.macroenabled.12"
    assert _rejection(detector, buffer.getvalue(), name="a.docm").context["reason"] == "dangerous"


def test_a_zip_with_a_java_manifest_is_a_jar(any_detector: TypeDetector) -> None:
    assert any_detector.detect(files.jar()) == "application/java-archive"


# ------------------------------------------------------------------------------------------- allow-lists


def test_a_wildcard_accepts_its_major_type_only(detector: TypeDetector) -> None:
    assert (
        detector.check(files.png(), name="a.png", declared="image/png", allowed=("image/*",)) == "image/png"
    )
    error = _rejection(detector, files.pdf(), name="a.pdf", allowed=("image/*", "audio/mpeg"))
    assert error.context["reason"] == "not_allowed"
    assert error.context["detected"] == "application/pdf"
    assert "application/pdf" in str(error)
    assert "image/*, audio/mpeg" in str(error) or "audio/mpeg, image/*" in str(error)


@pytest.mark.parametrize(
    ("data", "allowed"),
    [
        (files.HTML, ("text/*",)),
        (files.HTML, ("*/*",)),
        (files.SVG, ("image/*",)),
        (files.elf(2), ("application/*",)),
        (files.pe(), ("*/*",)),
        (files.SCRIPTS["tool.py"][0], ("text/*", "text/plain")),
    ],
)
def test_a_wildcard_never_lets_a_dangerous_type_in(
    detector: TypeDetector, data: bytes, allowed: tuple[str, ...]
) -> None:
    error = _rejection(detector, data, allowed=allowed)
    assert error.context["reason"] == "dangerous"
    assert "exactly" in str(error)


def test_a_dangerous_type_named_exactly_is_accepted(detector: TypeDetector) -> None:
    assert (
        detector.check(files.HTML, name="page.html", declared="text/html", allowed=("text/html",))
        == "text/html"
    )
    exe = "application/vnd.microsoft.portable-executable"
    assert (
        detector.check(files.pe(), name="setup.exe", declared="application/x-msdownload", allowed=(exe,))
        == exe
    )


def test_star_slash_star_is_the_same_as_an_empty_allow_list(detector: TypeDetector) -> None:
    for data in (files.png(), files.pdf(), files.TEXT, files.plain_zip()):
        assert detector.check(data, name=None, declared=None, allowed=("*/*",)) == detector.detect(data)


@pytest.mark.parametrize(
    "sample", [s for s in corpus() if is_dangerous(s.expected)], ids=lambda sample: sample.name
)
def test_every_dangerous_corpus_file_needs_its_exact_type(detector: TypeDetector, sample: Sample) -> None:
    major = sample.expected.split("/", 1)[0]
    for allowed in ((), ("*/*",), (f"{major}/*",)):
        assert _rejection(detector, sample.data, allowed=allowed).context["reason"] == "dangerous"
    assert (
        detector.check(sample.data, name=None, declared=None, allowed=(sample.expected,)) == sample.expected
    )


def test_the_dangerous_set_covers_executables_scripts_and_active_markup() -> None:
    for kind in (
        "application/x-executable",
        "application/vnd.microsoft.portable-executable",
        "application/x-mach-binary",
        "text/x-shellscript",
        "text/x-msdos-batch",
        "text/html",
        "image/svg+xml",
        "application/java-archive",
        "text/x-script.lua",
    ):
        assert is_dangerous(kind), kind
    for kind in ("image/png", "application/pdf", "application/zip", DOCX, "text/plain", "application/json"):
        assert not is_dangerous(kind), kind
    assert {"text/html", "image/svg+xml", "text/xml"} <= DANGEROUS


def test_aliases_in_an_allow_list_match_the_canonical_type(detector: TypeDetector) -> None:
    assert (
        detector.check(files.jpeg(), name="a.jpg", declared="image/jpg", allowed=("image/jpg",))
        == "image/jpeg"
    )
    icon = detector.check(files.ico(), name="a.ico", declared="image/x-icon", allowed=("image/x-icon",))
    assert icon == "image/vnd.microsoft.icon"
    assert (
        detector.check(files.wav(), name="a.wav", declared="audio/wav", allowed=("AUDIO/WAV",))
        == "audio/x-wav"
    )


# ---------------------------------------------------------------------------------- names and declared types


@pytest.mark.parametrize("name", ["photo.dat", "photo.xyz123", "photo", "photo.bin", ".hidden", None])
def test_an_unknown_or_missing_extension_is_accepted(detector: TypeDetector, name: str | None) -> None:
    assert detector.check(files.png(), name=name, declared=None, allowed=()) == "image/png"


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (files.jpeg(), "a.jpe"),
        (files.jpeg(), "a.JFIF"),
        (files.tiff(), "a.tif"),
        (files.csv_text(), "a.txt"),
        (files.TEXT, "a.csv"),
        (files.TEXT, "a.json"),
        (files.json_text(), "a.txt"),
        (files.TEXT, "server.log"),
        (files.TEXT, "README.md"),
        (files.TEXT, "notes.c"),
        (files.mp3(), "a.MP3"),
        (files.ogg_opus(), "voice.ogg"),
        (files.sfnt(b"OTTO"), "font.ttf"),
        (files.ole(), "old.xls"),
    ],
)
def test_an_extension_of_the_same_family_is_accepted(detector: TypeDetector, data: bytes, name: str) -> None:
    detector.check(data, name=name, declared=None, allowed=())


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (files.pdf(), "report.pdf.exe"),
        (files.TEXT, "run.bat"),
        (files.TEXT, "setup.msi"),
        (files.TEXT, "page.html"),
        (files.ole(), "setup.msi"),
        (files.rtf(), "letter.txt"),
        (files.png(), "photo.jpg"),
        (files.plain_zip(), "app.jar"),
    ],
)
def test_an_extension_that_disagrees_with_the_content_is_refused(
    detector: TypeDetector, data: bytes, name: str
) -> None:
    error = _rejection(detector, data, name=name)
    assert error.context["reason"] == "extension_mismatch"
    assert error.context["extension"] == type_of_extension(extension(name))
    assert name.rsplit(".", 1)[-1] in str(error) or "says" in str(error)


@pytest.mark.parametrize(
    "declared",
    [
        "",
        "application/octet-stream",
        "binary/octet-stream",
        "application/force-download",
        "image/png",
        "IMAGE/PNG",
        "image/png; charset=binary",
        "image/x-png",
        None,
    ],
)
def test_a_declared_type_that_agrees_or_says_nothing_is_accepted(
    detector: TypeDetector, declared: str | None
) -> None:
    assert detector.check(files.png(), name="a.png", declared=declared, allowed=()) == "image/png"


def test_windows_browsers_csv_content_type_is_accepted(detector: TypeDetector) -> None:
    assert (
        detector.check(files.csv_text(), name="a.csv", declared="application/vnd.ms-excel", allowed=())
        == "text/csv"
    )
    error = _rejection(detector, files.png(), declared="application/vnd.ms-excel")
    assert error.context["reason"] == "declared_mismatch"


def test_a_declared_type_that_disagrees_is_refused_with_both_types_in_the_message(
    detector: TypeDetector,
) -> None:
    error = _rejection(detector, files.jpeg(), name="a.jpg", declared="image/png")
    assert error.context == {
        "detected": "image/jpeg",
        "declared": "image/png",
        "reason": "declared_mismatch",
        "allowed": [],
    }
    assert "image/png" in str(error)
    assert "image/jpeg" in str(error)
    assert error.status == 415
    assert error.error_code == "file_type_rejected"


# ------------------------------------------------------------------------------------ empty files, polyglots


def test_an_empty_file_is_its_own_type(any_detector: TypeDetector) -> None:
    assert any_detector.detect(b"") == "application/x-empty"
    assert (
        any_detector.check(b"", name="photo.png", declared="image/png", allowed=()) == "application/x-empty"
    )
    assert _rejection(any_detector, b"", allowed=("image/*",)).context["reason"] == "not_allowed"
    assert (
        any_detector.check(b"", name="a", declared=None, allowed=("application/x-empty",))
        == "application/x-empty"
    )


@pytest.mark.parametrize(
    ("data", "name", "marker"),
    [
        (files.gif(trailer=b"<?php system($_GET['c']); ?>"), "a.gif", "<?php"),
        (files.png(text=b"<script>alert(1)</script>"), "a.png", "<script"),
        (files.jpeg() + b"<HTML><body>", "a.jpg", "<HTML"),
        (files.mp3() + b"<iframe src=x>", "a.mp3", "<iframe"),
    ],
)
def test_a_media_file_carrying_markup_is_refused_even_when_its_type_is_allowed(
    detector: TypeDetector, data: bytes, name: str, marker: str
) -> None:
    detected = detector.detect(data)
    error = _rejection(detector, data, name=name, allowed=(detected,))
    assert error.context["reason"] == "dangerous"
    assert marker in str(error)


# ------------------------------------------------------------------------------------------ never raises


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_detect_never_raises_and_answers_a_canonical_type(data: bytes) -> None:
    for engine in (_LIBMAGIC, _FILETYPE):
        kind = engine.detect(data)
        major, slash, minor = kind.partition("/")
        assert slash
        assert major
        assert minor
        assert kind == kind.lower()


_LIBMAGIC = TypeDetector(engine="libmagic")
_FILETYPE = TypeDetector(engine="filetype")


def test_a_head_longer_than_8_kib_is_cut_not_refused(detector: TypeDetector) -> None:
    assert detector.check(files.pdf(400), name="a.pdf", declared=None, allowed=()) == "application/pdf"


def test_a_single_printable_byte_is_text(any_detector: TypeDetector) -> None:
    assert any_detector.detect(b"a") == "text/plain"
    any_detector.check(b"7", name="count.txt", declared="text/plain", allowed=("text/plain",))


# --------------------------------------------------------------------------------------------- threads


def test_eight_threads_share_one_detector_and_get_only_right_answers(detector: TypeDetector) -> None:
    samples = [s for s in corpus() if s.data][:60]
    expected = [detector.detect(s.data) for s in samples]
    assert expected == [s.expected for s in samples]
    calls_per_thread = 3000
    start = threading.Barrier(8)
    wrong: list[tuple[str, str]] = []
    done = Counter[int]()

    def work(offset: int) -> None:
        start.wait(timeout=30)
        for i in range(calls_per_thread):
            index = (i * 7 + offset) % len(samples)
            got = detector.detect(samples[index].data)
            if got != expected[index]:
                wrong.append((samples[index].name, got))
        done[offset] = calls_per_thread

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert sum(done.values()) == 8 * calls_per_thread
    assert wrong == []


# --------------------------------------------------------------------------------------- configuration


def test_an_unknown_engine_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        TypeDetector(engine="puremagic")  # type: ignore[arg-type]
    assert caught.value.field == "engine"


def test_auto_uses_libmagic_where_it_is_installed() -> None:
    auto = TypeDetector()
    assert auto.engine == "libmagic"
    assert auto.version.startswith("libmagic")


@pytest.mark.parametrize(
    ("given_types", "expected"),
    [
        ((), ()),
        (["image/png"], ("image/png",)),
        ([" Image/JPG ", "image/jpeg", "IMAGE/*"], ("image/jpeg", "image/*")),
        (("*/*",), ("*/*",)),
        (["application/vnd.openxmlformats-officedocument.wordprocessingml.document"], (DOCX,)),
        (["audio/wav", "text/x-python"], ("audio/x-wav", "text/x-script.python")),
    ],
)
def test_validate_allowed_normalises(given_types: list[str], expected: tuple[str, ...]) -> None:
    assert validate_allowed(given_types, "allowed_types") == expected


@pytest.mark.parametrize(
    ("bad", "hint"),
    [
        (["image"], "image/*"),
        (["image/**"], "wildcard"),
        (["*/png"], "wildcard"),
        (["*"], "wildcard"),
        ([""], "content type"),
        (["image/png; q=1"], "parameters"),
        (["image/ png"], "content type"),
        (["image/png/x"], "content type"),
        ([42], "int"),
        ("image/png", "['image/png']"),
    ],
)
def test_validate_allowed_refuses_malformed_patterns_naming_the_field(bad: object, hint: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_allowed(bad, "allowed_types")  # type: ignore[arg-type]
    assert caught.value.field == "allowed_types"
    assert hint in str(caught.value)


def test_check_refuses_a_malformed_allow_list_before_looking_at_content(detector: TypeDetector) -> None:
    with pytest.raises(ValidationError):
        detector.check(files.png(), name=None, declared=None, allowed=["image"])
    with pytest.raises(ValidationError):
        detector.check(files.png(), name=None, declared=None, allowed=[["image/png"]])  # type: ignore[list-item]
