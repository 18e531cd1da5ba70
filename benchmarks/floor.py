"""Baselines (c) and (d): the cheapest hand-written designs threadhost is measured against.

(c) ``broker`` + ``worker`` — a minimal two-hop ROUTER/DEALER msgpack broker: no gate, no
validation, no supervision, no busy answers. The client's DEALER talks to the broker's
front ROUTER; the broker forwards ``[client id, body]`` to the one worker through its back
ROUTER and routes the worker's answer back. Every ready message is drained per wake-up.
This is the floor for any design with a broker process in the middle.

(d) ``direct`` — one hop: the client's DEALER talks straight to a ROUTER in the process
that calls ``mylib.calc``. The floor for any design at all.

Wire (both): one msgpack frame ``[id, method, args]`` -> ``[id, value]``.

    python -m benchmarks.floor broker --front tcp://127.0.0.1:P --back tcp://127.0.0.1:Q
    python -m benchmarks.floor worker --connect tcp://127.0.0.1:Q
    python -m benchmarks.floor direct --bind tcp://127.0.0.1:P
"""

from __future__ import annotations

import argparse
import signal
from typing import Any

import msgpack
import zmq

from examples import mylib

WORKER_ID = b"w"


def _stop_on_sigterm() -> None:
    def _raise(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def broker(front_ep: str, back_ep: str) -> None:
    ctx = zmq.Context()
    front = ctx.socket(zmq.ROUTER)
    back = ctx.socket(zmq.ROUTER)
    for s in (front, back):
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 10_000)
        s.setsockopt(zmq.RCVHWM, 10_000)
    front.bind(front_ep)
    back.bind(back_ep)
    hello = back.recv_multipart()  # the worker announces itself once
    worker = hello[0]
    poller = zmq.Poller()
    poller.register(front, zmq.POLLIN)
    poller.register(back, zmq.POLLIN)
    noblock = zmq.NOBLOCK
    again = zmq.Again
    try:
        while True:
            events = dict(poller.poll())
            if front in events:
                while True:
                    try:
                        client, body = front.recv_multipart(noblock)
                    except again:
                        break
                    back.send_multipart([worker, client, body])
            if back in events:
                while True:
                    try:
                        _, client, body = back.recv_multipart(noblock)
                    except again:
                        break
                    front.send_multipart([client, body])
    except KeyboardInterrupt:
        pass
    finally:
        front.close(linger=0)
        back.close(linger=0)
        ctx.term()


def _serve(sock: zmq.Socket[bytes], envelope: int) -> None:
    """Answer ``[*envelope, body]`` messages: unpack, call mylib, pack."""
    packb = msgpack.Packer(use_bin_type=True).pack
    unpackb = msgpack.unpackb
    calc = mylib.calc
    while True:
        frames = sock.recv_multipart()
        rid, method, args = unpackb(frames[-1])
        value = calc(*args) if method == "calc" else None
        frames[-1] = packb([rid, value])
        sock.send_multipart(frames)


def worker(connect_ep: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.ROUTING_ID, WORKER_ID)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(connect_ep)
    sock.send_multipart([b"hello"])
    mylib.init()
    try:
        _serve(sock, 1)  # [client id, body]
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
        ctx.term()


def direct(bind_ep: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 10_000)
    sock.setsockopt(zmq.RCVHWM, 10_000)
    sock.bind(bind_ep)
    mylib.init()
    try:
        _serve(sock, 1)  # [client id, body]
    except KeyboardInterrupt:
        pass
    finally:
        sock.close(linger=0)
        ctx.term()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="program", required=True)
    b = sub.add_parser("broker")
    b.add_argument("--front", required=True)
    b.add_argument("--back", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--connect", required=True)
    d = sub.add_parser("direct")
    d.add_argument("--bind", required=True)
    ns = parser.parse_args(argv)
    _stop_on_sigterm()
    if ns.program == "broker":
        broker(ns.front, ns.back)
    elif ns.program == "worker":
        worker(ns.connect)
    else:
        direct(ns.bind)


if __name__ == "__main__":
    main()
