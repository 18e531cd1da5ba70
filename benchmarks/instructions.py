"""The client's cost per call in CPU instructions, counted by valgrind (callgrind): a figure
that does not move with the machine's load, unlike CPU time.

One echo process (``benchmarks.hop``'s: answers at once, no library call) and, for each
variant, a client process run twice under ``valgrind --tool=callgrind``, with ``--calls``
and with three times as many sequential calls after the same warm-up; the difference divided
by twice ``--calls`` is the instructions one call costs the client process (its Python, pyzmq,
libzmq's I/O thread, the codec; not the kernel's work). Variants:

* ``floor``     — the floor's client: one msgpack frame ``[id, "calc", [5]]`` per call;
* ``th-client`` — ``threadhost.connect(...).calc(5)``;
* ``th-async``  — ``await threadhost.AsyncClient(...).calc(5)``, one call at a time.

``--baseline DIR`` also counts the client of another checkout (its root: e.g. a
``git worktree`` of main) beside this one's. Needs valgrind (``apt-get install valgrind``);
about 1 minute per variant and checkout.

    python -m benchmarks.instructions [--calls 1000] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("floor", "th-client", "th-async")
_WARMUP = 300


def _client(variant: str, endpoint: str, calls: int) -> None:
    """The measured process: warm up, then ``calls`` sequential calls."""
    if variant == "floor":
        import msgpack
        import zmq

        sock = zmq.Context().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, 10_000)
        sock.connect(endpoint)
        ids = itertools.count(1)
        packb = msgpack.Packer(use_bin_type=True).pack
        unpackb = msgpack.unpackb
        for _ in range(_WARMUP + calls):
            sock.send(packb([next(ids), "calc", [5]]))
            if unpackb(sock.recv())[1] != 6:
                raise RuntimeError("the echo answered wrongly")
        sock.close()
        return
    import threadhost

    if variant == "th-client":
        with threadhost.connect(endpoint, timeout=10) as lib:
            calc = lib.calc
            for _ in range(_WARMUP + calls):
                if calc(5) != 6:
                    raise RuntimeError("the echo answered wrongly")
        return

    async def main() -> None:
        async with threadhost.AsyncClient(endpoint, timeout=10) as alib:
            acalc = alib.calc
            for _ in range(_WARMUP + calls):
                if await acalc(5) != 6:
                    raise RuntimeError("the echo answered wrongly")

    asyncio.run(main())


def _count(root: Path, variant: str, endpoint: str, calls: int) -> int:
    """Instructions of one client process under callgrind. It runs this file as a script
    (an older checkout has no such module) with ``root`` first on its path."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
             sys.executable, str(Path(__file__).resolve()), "--client", variant, endpoint,
             str(calls)],
            cwd=root, env=env, capture_output=True, text=True, timeout=900,
            stdin=subprocess.DEVNULL,
        )
    found = re.search(r"refs:\s+([\d,]+)", proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"{variant} in {root} failed:\n{proc.stderr[-3000:]}")
    return int(found.group(1).replace(",", ""))


def measure(calls: int, roots: list[Path]) -> dict[str, dict[str, float]]:
    """Instructions per call: ``{root: {variant: n}}``."""
    from benchmarks.systems import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    echo = subprocess.Popen([sys.executable, "-m", "benchmarks.hop", "--echo", endpoint],
                            cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        out: dict[str, dict[str, float]] = {}
        for root in roots:
            row = out[str(root)] = {}
            for variant in VARIANTS:
                if variant == "floor" and root != roots[0]:
                    continue  # the floor does not depend on the checkout
                small = _count(root, variant, endpoint, calls)
                large = _count(root, variant, endpoint, 3 * calls)
                row[variant] = (large - small) / (2 * calls)
        return out
    finally:
        echo.kill()
        echo.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="root of another checkout, counted beside this one")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.client:
        variant, endpoint, calls = ns.client
        _client(variant, endpoint, int(calls))
        return 0
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not installed (apt-get install valgrind)")
    roots = [ROOT] + ([ns.baseline.resolve()] if ns.baseline else [])
    res = measure(ns.calls, roots)
    print(f"client instructions per call (callgrind; {ns.calls} vs {3 * ns.calls} calls)")
    floor = res[str(ROOT)]["floor"]
    for root, row in res.items():
        for variant, n in row.items():
            print(f"{variant:10s} {n:9.0f}  {n / floor:5.2f}x floor  {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
