"""Without chromium the browser tests skip locally and fail under BUTTRESS_REQUIRE_SERVICES=1 (as in CI)."""

from __future__ import annotations

import pytest

from . import conftest


@pytest.fixture
def no_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest.shutil, "which", lambda name: None)
    monkeypatch.setattr(conftest.os, "access", lambda path, mode: False)


def test_a_missing_chromium_skips_locally(no_chromium: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUTTRESS_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Debian package chromium"):
        conftest.chromium_path()


def test_a_missing_chromium_fails_when_services_are_required(
    no_chromium: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BUTTRESS_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="BUTTRESS_REQUIRE_SERVICES=1"):
        conftest.chromium_path()
