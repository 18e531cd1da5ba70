"""The seed's ``mylib_run.py``: drives :mod:`examples.mylib` on its one thread.

Receives commands on a PAIR socket connected to ``service.py``: ``INIT``, ``CALC x``
(answers ``CALC-RESULT y``), ``READCONFIG`` (answers ``READCONFIG-DONE`` when done) and
``UNINIT``. After ``--idle-timeout`` seconds without a message it sends ``TIMEOUT`` and
goes back to polling; the service decides whether to answer ``READCONFIG``.

    python -m benchmarks.seed.mylib_run [--lib-port 6002] [--idle-timeout 10]
"""

from __future__ import annotations

import argparse

import zmq

from examples import mylib


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lib-port", type=int, default=6002)
    parser.add_argument("--idle-timeout", type=float, default=10.0)
    ns = parser.parse_args(argv)

    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.connect(f"tcp://127.0.0.1:{ns.lib_port}")
    timeout_ms = int(ns.idle_timeout * 1000)
    try:
        while True:
            if not socket.poll(timeout_ms):
                socket.send_multipart([b"TIMEOUT"])
                continue
            message = socket.recv_multipart()
            command = message[0]
            if command == b"CALC":
                result = mylib.calc(int(message[1]))
                socket.send_multipart([b"CALC-RESULT", str(result).encode()])
            elif command == b"READCONFIG":
                mylib.readConfig()
                socket.send_multipart([b"READCONFIG-DONE"])
            elif command == b"INIT":
                mylib.init()
            elif command == b"UNINIT":
                mylib.uninit()
    except KeyboardInterrupt:
        pass
    finally:
        socket.close(linger=0)
        context.term()


if __name__ == "__main__":
    main()
