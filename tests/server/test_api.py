"""The public names of buttress.server."""

from __future__ import annotations

import subprocess
import sys

import buttress.server


def test_the_public_api_is_curated_and_sorted() -> None:
    assert buttress.server.__all__ == [
        "PROBLEM_CONTENT_TYPE",
        "REQUEST_ID_HEADER",
        "UNMATCHED_ROUTE",
        "AdminAuth",
        "AdminAuthError",
        "AdminIdentity",
        "Ops",
        "OpsMiddleware",
        "Problem",
        "create_app",
        "install",
        "route_template",
    ]
    for name in buttress.server.__all__:
        assert getattr(buttress.server, name) is not None


def test_importing_buttress_does_not_import_the_server() -> None:
    code = "import sys, buttress; print('buttress.server' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
