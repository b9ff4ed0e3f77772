"""What users' tests get: the ``file_store`` fixture, the store ``get_files()`` returns while a test runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from buttress.files import FileStore, get_files
from buttress.testing.pytest_plugin import file_store

__all__ = ["file_store"]

pytest_plugins = ["pytester"]


@pytest.mark.usefixtures("isolated_settings")
def test_the_fixture_is_the_store_the_app_reaches(file_store: FileStore, tmp_path: Path) -> None:
    assert get_files() is file_store
    saved = get_files().save(b"from the app\n", name="note.txt", owner="ana")
    assert file_store.read_bytes(saved.id) == b"from the app\n"
    assert file_store.blobs.location == str(tmp_path / "buttress-files" / "files")
    assert not Path("buttress.db").exists()  # the app's embedded database was never touched


def test_a_users_test_file_gets_the_fixture_from_the_plugin(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from buttress.files import get_files

        def test_upload(file_store):
            saved = get_files().save(b"hello\\n", name="../hello.txt")
            assert saved.name == "hello.txt"
            assert file_store.usage().files == 1
        """
    )
    result = pytester.runpytest_subprocess("-p", "buttress", "-q")
    result.assert_outcomes(passed=1)
