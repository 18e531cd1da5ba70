"""The broker hands freed heap back to the system once per pause in client traffic."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, tempfile, threading, time
    import threadhost.broker as B
    from threadhost.client import Client

    trims = []
    B._malloc_trim = lambda: (lambda: trims.append(time.monotonic()))
    ep = sys.argv[1]
    marks = {}

    def traffic():
        with Client(ep, timeout=5) as c:
            c.ping()  # connected (the client may talk to the broker on first use)
            time.sleep(0.4)  # whatever pause that made has been trimmed by now
            marks["busy_start"] = time.monotonic()
            for _ in range(15):  # 0.75 s of traffic every 50 ms: no pause, no trim
                c.ping()
                time.sleep(0.05)
            marks["busy_end"] = time.monotonic()
            time.sleep(0.6)  # a pause: one trim
            marks["second"] = time.monotonic()
            c.ping()
            time.sleep(0.6)  # another pause: one more trim
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=traffic, daemon=True).start()
    backend = "ipc://" + tempfile.mkdtemp() + "/b.sock"
    code = B.Broker(None, endpoint=ep, backend=backend, log_level="ERROR").run()
    assert code == 0, code
    trims = [t for t in trims if t > marks["busy_start"]]
    assert len(trims) == 2, (trims, marks)
    assert marks["busy_end"] < trims[0] < marks["second"] < trims[1], (trims, marks)
    print("ok")
    """
)


def test_trims_once_per_pause_in_client_traffic() -> None:
    from tests.conftest import free_endpoint

    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, free_endpoint()], cwd=ROOT, capture_output=True,
        text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_malloc_trim_is_found_with_glibc() -> None:
    import platform

    from threadhost.broker import _malloc_trim

    trim = _malloc_trim()
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert trim is not None
        trim()  # callable, returns nothing
    else:
        assert trim is None
