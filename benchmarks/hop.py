"""What one hop of the threadhost protocol costs, against the floor's framing.

One client process, one echo process (a ROUTER that answers at once, no library call),
loopback TCP, sequential round trips, the variants interleaved over several rounds:

* ``floor``      — one msgpack frame ``[id, "calc", [5]]`` -> ``[id, 6]`` (baseline (c)'s wire);
* ``th-frames``  — the threadhost wire, hand-driven: header frame + canonical ``call`` map,
                   answered with header frame + ``result`` map; minimal parsing;
* ``one-frame``  — not threadhost's wire: the same header and map in *one* frame (what a
                   single-frame protocol version would cost);
* ``th-client``  — ``threadhost.connect(...).calc(5)``: the same wire through the real client
                   (request ids, lazy socket options, validation of the reply, typed errors);
* ``th-async``   — ``await threadhost.AsyncClient(...).calc(5)``, one call at a time, on one
                   event loop (the loop's own work per call included).

``th-frames - floor`` is what the wire format costs a straightforward implementation (the
echo reads with ``recv_multipart``, a ``getsockopt`` per frame), ``one-frame - floor`` how
much of that is the separate header frame, and ``th-client - th-frames`` the client
library's own cost. The last column is the client process's CPU time per call
(``time.process_time``: its Python and libzmq's I/O thread), the figure to watch when
changing the client: measure an old and a new checkout in the same minute, several rounds
(run from an old checkout's root, ``python -m benchmarks.hop`` measures its client).

(threadhost's own broker, host and client read frames without a ``getsockopt``; end to
end, a one-frame build measured no faster: docs/performance.md.)

    python -m benchmarks.hop [--calls 3000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import msgpack
import zmq

from benchmarks.systems import free_port


def echo(endpoint: str) -> None:
    """The echo process: answers both framings."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    packb = msgpack.Packer(use_bin_type=True).pack
    unpackb = msgpack.unpackb
    while True:
        frames = sock.recv_multipart()
        if len(frames) == 3:  # [client, header, body]
            rid = unpackb(frames[2])["id"]
            sock.send_multipart([frames[0], frames[1], packb({"kind": "result", "id": rid,
                                                               "value": 6})])
        elif frames[1][:3] == b"TH\x01":  # [client, header + body]
            rid = unpackb(frames[1][3:])["id"]
            sock.send_multipart([frames[0], b"TH\x01" + packb({"kind": "result", "id": rid,
                                                                "value": 6})])
        else:  # [client, body]
            rid, _, _ = unpackb(frames[1])
            sock.send_multipart([frames[0], packb([rid, 6])])


def measure(calls: int, rounds: int) -> dict[str, dict[str, float]]:
    import threadhost
    from threadhost import protocol

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.hop", "--echo", endpoint])
    try:
        ctx = zmq.Context()
        floor_sock = ctx.socket(zmq.DEALER)
        frames_sock = ctx.socket(zmq.DEALER)
        for s in (floor_sock, frames_sock):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, 10_000)
            s.connect(endpoint)
        lib = threadhost.connect(endpoint, timeout=10)
        alib = threadhost.AsyncClient(endpoint, timeout=10)
        loop = asyncio.new_event_loop()
        ids = itertools.count(1)
        packb = msgpack.Packer(use_bin_type=True).pack
        unpackb = msgpack.unpackb
        header = protocol.HEADER
        more = zmq.SNDMORE

        def floor() -> Any:
            floor_sock.send(packb([next(ids), "calc", [5]]))
            return unpackb(floor_sock.recv())[1]

        def th_frames() -> Any:
            frames_sock.send(header, more)
            frames_sock.send(protocol.encode_call(next(ids), "calc", [5], {}, 10.0, None))
            _, body = frames_sock.recv_multipart()
            return unpackb(body)["value"]

        def one_frame() -> Any:
            frames_sock.send(header + protocol.encode_call(next(ids), "calc", [5], {}, 10.0, None))
            return unpackb(frames_sock.recv()[3:])["value"]

        def th_client() -> Any:
            return lib.calc(5)

        clock = time.perf_counter_ns

        def timed(f: Callable[[], Any]) -> Callable[[int], list[int]]:
            def run(n: int) -> list[int]:
                lat = []
                for _ in range(n):
                    t0 = clock()
                    if f() != 6:
                        raise RuntimeError("the echo answered wrongly")
                    lat.append(clock() - t0)
                return lat

            return run

        async def th_async(n: int) -> list[int]:
            lat = []
            calc = alib.calc
            for _ in range(n):
                t0 = clock()
                if await calc(5) != 6:
                    raise RuntimeError("the echo answered wrongly")
                lat.append(clock() - t0)
            return lat

        variants: dict[str, Callable[[int], list[int]]] = {
            "floor": timed(floor), "th-frames": timed(th_frames),
            "one-frame": timed(one_frame), "th-client": timed(th_client),
            "th-async": lambda n: loop.run_until_complete(th_async(n)),
        }
        for run in variants.values():  # connected and warm
            run(200)
        p50: dict[str, list[float]] = {k: [] for k in variants}
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        for rnd in range(rounds):
            names = list(variants)
            order = names[rnd % len(names):] + names[: rnd % len(names)]
            for name in order:
                c0 = time.process_time()
                lat = variants[name](calls)
                cpu[name].append((time.process_time() - c0) / calls * 1e6)
                lat.sort()
                p50[name].append(lat[len(lat) // 2] / 1000)
        lib.close()
        loop.run_until_complete(alib.close())
        loop.close()
        floor_sock.close()
        frames_sock.close()
        return {
            k: {"p50_us": statistics.median(p50[k]), "client_cpu_us": statistics.median(cpu[k])}
            for k in variants
        }
    finally:
        proc.kill()
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--echo", metavar="ENDPOINT", help=argparse.SUPPRESS)
    ns = parser.parse_args(argv)
    if ns.echo:
        echo(ns.echo)
        return 0
    res = measure(ns.calls, ns.rounds)
    base = res["floor"]["p50_us"]
    print(f"one hop, sequential, median of {ns.rounds} rounds x {ns.calls} calls")
    print(f"{'variant':12s} {'p50 (us)':>9s} {'vs floor':>9s} {'client CPU/call (us)':>21s}")
    for k, v in res.items():
        print(f"{k:12s} {v['p50_us']:9.1f} {v['p50_us'] - base:+9.1f} {v['client_cpu_us']:21.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
