"""Docs change with the code: every ```python block in README.md and docs/*.md runs.

Blocks meant to be read, not run (a REPL transcript, a fragment that needs a live service)
are fenced as ```python-norun or ```text instead.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import threadhost

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, int, str]]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((path.name, line, m.group(1)))
    return out


@pytest.mark.parametrize(("doc", "line", "code"), blocks(),
                         ids=[f"{d}:{n}" for d, n, _ in blocks()])
def test_python_block_runs(doc: str, line: int, code: str, tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"{doc}:{line} failed:\n{proc.stdout}\n{proc.stderr}"


def test_every_doc_is_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for path in DOCS[1:]:
        assert f"docs/{path.name}" in readme, path.name


def test_public_names_are_pinned() -> None:
    assert sorted(threadhost.__all__) == sorted([
        "PROTOCOL_VERSION", "Adapter", "AdapterError", "AsyncClient", "AuthenticationError",
        "BadArgumentsError",
        "BusyError", "CallTimeoutError", "Client", "FingerprintMismatchError",
        "HostCrashedError", "PermissionDeniedError", "PoisonedCallError", "ProtocolError",
        "ProtocolMismatchError",
        "RemoteError",
        "Retry", "ServiceFailedError", "ThreadhostError", "TryLaterError", "UnavailableError",
        "UnknownCallError", "__version__", "connect", "fast", "load_adapter", "slow",
    ])
    for name in threadhost.__all__:
        assert hasattr(threadhost, name), name
