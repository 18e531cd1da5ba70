"""examples/mylib.py: the stand-in is as hostile as the real library.

Anything that must kill the process runs in a child Python (``sys.executable -c``); the test
asserts death by SIGABRT, not a Python exception (a traceback would exit with status 1).
In-process tests only use the library from the main thread and leave it uninitialised.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples import mylib

ROOT = Path(__file__).resolve().parent.parent


def run_child(code: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter that can import ``examples``."""
    env = {k: v for k, v in os.environ.items() if k != mylib.CONFIG_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if config is not None:
        env[mylib.CONFIG_ENV] = str(config)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def assert_aborted(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode == -signal.SIGABRT, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert "mylib: fatal:" in result.stderr
    assert words in result.stderr


@pytest.fixture
def initialised(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """mylib initialised on this (the main) thread, uninitialised afterwards."""
    monkeypatch.delenv(mylib.CONFIG_ENV, raising=False)
    mylib.init()
    try:
        yield
    finally:
        mylib.uninit()


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mylib.toml"
    path.write_text(textwrap.dedent(text))
    return path


# --------------------------------------------------------------------------- behaviour


def test_defaults_calc_is_x_plus_one(initialised: None) -> None:
    assert mylib.calc(5) == 6
    assert mylib.calc(-1) == 0


def test_read_config_without_file_keeps_defaults(
    initialised: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: 0.0)  # skip the 0..30 s nap
    mylib.readConfig()
    assert mylib.calc(5) == 6


def test_read_config_applies_offset(
    initialised: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "offset = 10\nread_max_seconds = 0\n")
    monkeypatch.setenv(mylib.CONFIG_ENV, str(path))
    mylib.readConfig()
    assert mylib.calc(5) == 15


def test_read_config_sleeps_between_min_and_max(
    initialised: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_config(tmp_path, "read_min_seconds = 2\nread_max_seconds = 3.5\n")
    monkeypatch.setenv(mylib.CONFIG_ENV, str(path))
    naps: list[float] = []
    monkeypatch.setattr(time, "sleep", naps.append)
    mylib.readConfig()
    assert len(naps) == 1 and 2.0 <= naps[0] <= 3.5


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("offset = [", "invalid TOML"),
        ('offset = "5"\n', "offset must be an integer"),
        ("offset = true\n", "offset must be an integer"),
        ("offset = 1.5\n", "offset must be an integer"),
        ("ofset = 2\n", "unknown keys: ofset"),
        ("read_max_seconds = -1\n", "read_max_seconds must be a non-negative number"),
        ("read_min_seconds = 5\nread_max_seconds = 1\n", "exceeds read_max_seconds"),
        ('abort_in_read = "yes"\n', "abort_in_read must be true or false"),
    ],
)
def test_invalid_config_raises_and_keeps_the_old_one(
    initialised: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, words: str
) -> None:
    good = write_config(tmp_path, "offset = 7\nread_max_seconds = 0\n")
    monkeypatch.setenv(mylib.CONFIG_ENV, str(good))
    mylib.readConfig()
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    monkeypatch.setenv(mylib.CONFIG_ENV, str(bad))
    with pytest.raises(ValueError, match=words):
        mylib.readConfig()
    assert mylib.calc(1) == 8


def test_missing_config_file_raises_and_keeps_the_old_one(
    initialised: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(mylib.CONFIG_ENV, str(tmp_path / "absent.toml"))
    with pytest.raises(FileNotFoundError):
        mylib.readConfig()
    assert mylib.calc(1) == 2


def test_init_resets_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mylib.CONFIG_ENV, str(write_config(tmp_path, "offset = 3\n")))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    mylib.init()
    mylib.readConfig()
    assert mylib.calc(0) == 3
    mylib.uninit()
    mylib.init()
    try:
        assert mylib.calc(0) == 1
    finally:
        mylib.uninit()


def test_config_is_read_when_read_config_starts(tmp_path: Path) -> None:
    # The file is rewritten during readConfig's sleep; the content read at the start applies.
    path = write_config(tmp_path, "offset = 100\nread_min_seconds = 0.5\nread_max_seconds = 0.5\n")
    result = run_child(
        f"""
        import threading, time
        from examples import mylib
        mylib.init()
        def rewrite():
            time.sleep(0.1)
            open({str(path)!r}, "w").write("offset = 200\\nread_max_seconds = 0\\n")
        threading.Thread(target=rewrite).start()
        mylib.readConfig()
        print(mylib.calc(0))
        mylib.readConfig()
        print(mylib.calc(0))
        """,
        config=path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["100", "200"]


def test_read_config_from_the_adapter_config_fixture_format(tmp_path: Path) -> None:
    result = run_child(
        """
        from examples import mylib
        mylib.init(); mylib.readConfig(); print(mylib.calc(5)); mylib.uninit()
        """,
        config=write_config(
            tmp_path, "offset = 2\nread_min_seconds = 0.0\nread_max_seconds = 0.0\n"
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


# --------------------------------------------------------------------------- hostility


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("mylib.calc(1)", "calc() called before init()"),
        ("mylib.readConfig()", "readConfig() called before init()"),
        ("mylib.uninit()", "uninit() called before init()"),
        ("mylib.init(); mylib.uninit(); mylib.calc(1)", "calc() called after uninit()"),
        ("mylib.init(); mylib.uninit(); mylib.uninit()", "uninit() called after uninit()"),
        ("mylib.init(); mylib.init()", "init() called twice without uninit()"),
        ("mylib.init(); mylib.calc('5')", "calc() got str '5', expected int"),
        ("mylib.init(); mylib.calc(True)", "calc() got bool True, expected int"),
        ("mylib.init(); mylib.calc(5.0)", "calc() got float 5.0, expected int"),
    ],
)
def test_misuse_aborts(code: str, words: str) -> None:
    assert_aborted(run_child(f"from examples import mylib\n{code}\nprint('survived')"), words)


@pytest.mark.parametrize("function", ["calc(1)", "readConfig()", "uninit()", "init()"])
def test_call_from_another_thread_aborts(function: str) -> None:
    result = run_child(
        f"""
        import threading
        from examples import mylib
        mylib.init()
        worker = threading.Thread(target=lambda: mylib.{function}, name="intruder")
        worker.start()
        worker.join()
        print("survived")
        """
    )
    assert_aborted(result, "from thread intruder")
    assert "survived" not in result.stdout


def test_thread_that_called_init_owns_the_library() -> None:
    # init on a worker thread, then use it there: fine; use it from main: fatal.
    result = run_child(
        """
        import threading
        from examples import mylib
        out = []
        def own():
            mylib.init()
            out.append(mylib.calc(41))
        worker = threading.Thread(target=own)
        worker.start(); worker.join()
        print(out[0], flush=True)
        mylib.calc(1)
        """
    )
    assert result.stdout.strip() == "42"
    assert_aborted(result, "calc() called from thread MainThread")


def test_abort_in_read_crashes_during_read_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, "abort_in_read = true\nread_max_seconds = 0\n")
    result = run_child(
        "from examples import mylib\nmylib.init()\nmylib.readConfig()\nprint('survived')",
        config=path,
    )
    assert_aborted(result, "readConfig() crashed (abort_in_read = true)")
