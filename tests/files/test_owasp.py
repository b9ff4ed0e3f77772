"""The OWASP File Upload Cheat Sheet's rules that a file store can keep, one test each, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.errors import FileTooLarge, FileTypeRejected
from buttress.files import FileStore
from tests.files.conftest import leftover_bytes
from tests.files.test_store import ELF, PNG

HTML = b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n"


def rejected(store: FileStore, data: bytes, **arguments: object) -> FileTypeRejected:
    with pytest.raises(FileTypeRejected) as caught:
        store.save(data, **arguments)  # type: ignore[arg-type]
    return caught.value


def test_owasp_allow_list_of_types(store: FileStore, tmp_path: Path) -> None:
    assert store.save(PNG, name="dot.png", allowed_types=["image/png"]).content_type == "image/png"
    error = rejected(store, b"plain words\n", name="notes.txt", allowed_types=["image/png"])
    assert error.context["reason"] == "not_allowed"
    assert leftover_bytes(tmp_path / "blobs" / ".tmp") == 0


def test_owasp_executables_are_refused_unless_named(store: FileStore) -> None:
    assert rejected(store, ELF, name="tool").context["reason"] == "dangerous"
    assert rejected(store, ELF, name="tool", allowed_types=["application/*"]).context["reason"] == "dangerous"
    allowed = store.save(ELF, name="tool", allowed_types=[rejected(store, ELF, name="t").context["detected"]])
    assert allowed.size == len(ELF)


def test_owasp_the_content_type_header_is_not_trusted(store: FileStore) -> None:
    error = rejected(store, b"just text\n", name="photo", content_type="image/png")
    assert error.context["reason"] == "declared_mismatch"


def test_owasp_a_spoofed_extension_is_refused(store: FileStore) -> None:
    assert rejected(store, HTML, name="avatar.png").context["reason"] in {"extension_mismatch", "dangerous"}
    assert rejected(store, PNG, name="page.html").context["reason"] == "extension_mismatch"


def test_owasp_storage_names_are_generated_by_the_application(store: FileStore, tmp_path: Path) -> None:
    saved = store.save(b"root:x:0:0\n", name="../../../../etc/passwd")
    assert saved.key == f"files/{saved.id[:2]}/{saved.id}"
    assert saved.name == "passwd"
    assert (tmp_path / "blobs" / saved.key).is_file()
    assert not (tmp_path / "etc").exists()


def test_owasp_file_names_are_limited_in_length_and_characters(store: FileStore) -> None:
    saved = store.save(b"x\n", name="a\x00b\x1bc\u202e" + "é" * 300 + ".txt")
    assert len(saved.name.encode()) <= 255
    assert saved.name.endswith(".txt")
    assert not any(ord(ch) < 32 or ch == "\u202e" for ch in saved.name)


def test_owasp_a_size_limit_holds_while_streaming(store: FileStore, tmp_path: Path) -> None:
    with pytest.raises(FileTooLarge):
        store.save(iter([b"z" * 4096] * 10), name="big.txt", max_size=10_000)
    assert leftover_bytes(tmp_path / "blobs") == 0


def test_owasp_files_are_never_overwritten_by_a_name(store: FileStore) -> None:
    first = store.save(b"mine\n", name="report.txt")
    second = store.save(b"theirs\n", name="report.txt")
    assert store.read_bytes(first.id) == b"mine\n"
    assert store.read_bytes(second.id) == b"theirs\n"
