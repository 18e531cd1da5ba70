"""The documentation site builds with ``mkdocs build --strict`` (mkdocs.yml), and its
generated references come from the code: the CLI reference shows ``threadhost serve``'s
options, the API reference the public errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("mkdocs", reason="the docs extra is not installed (make docs-setup)")
pytest.importorskip("material", reason="the docs extra is not installed (make docs-setup)")
pytest.importorskip("mkdocs_click", reason="the docs extra is not installed (make docs-setup)")
pytest.importorskip("mkdocstrings_handlers.python",
                    reason="the docs extra is not installed (make docs-setup)")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def test_cli_reference_shows_serve_and_its_options(site: Path) -> None:
    page = (site / "reference" / "cli" / "index.html").read_text()
    assert "threadhost serve" in page
    for option in ("--hosts", "--policy", "--endpoint"):
        assert option in page, option
    # the lazily loaded commands are documented too
    assert "threadhost proxy" in page
    assert "threadhost conformance" in page


def test_api_reference_shows_the_public_api(site: Path) -> None:
    page = (site / "reference" / "api" / "index.html").read_text()
    for name in ("BusyError", "UnavailableError", "Adapter", "connect", "AsyncClient",
                 "Retry", "parse_policy"):
        assert name in page, name


def test_every_docs_page_is_built_and_the_home_page_redirects(site: Path) -> None:
    for path in sorted((ROOT / "docs").glob("*.md")):
        assert (site / path.stem / "index.html").is_file(), path.name
    assert "reference/" in (site / "index.html").read_text()
    # offline-safe: no web fonts or other external resources
    for html in site.rglob("*.html"):
        assert "fonts.googleapis.com" not in html.read_text(), html
