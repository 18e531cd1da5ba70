"""The seed's ``service.py``: a PAIR-PAIR broker between ``prog`` and ``mylib_run.py``.

It keeps the whole state in ``waiting``: ``True`` from the library's ``TIMEOUT`` until its
``READCONFIG-DONE``; meanwhile a ``CALC`` is answered ``CALC-FAIL`` at once, otherwise
every message is forwarded to the other side.

    python -m benchmarks.seed.service [--client-port 6000] [--lib-port 6002]
"""

from __future__ import annotations

import argparse

import zmq


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client-port", type=int, default=6000)
    parser.add_argument("--lib-port", type=int, default=6002)
    ns = parser.parse_args(argv)

    context = zmq.Context()
    client = context.socket(zmq.PAIR)  # prog (mylib_proxy) side
    client.bind(f"tcp://127.0.0.1:{ns.client_port}")
    lib = context.socket(zmq.PAIR)  # mylib_run side
    lib.bind(f"tcp://127.0.0.1:{ns.lib_port}")

    poller = zmq.Poller()
    poller.register(client, zmq.POLLIN)
    poller.register(lib, zmq.POLLIN)

    waiting = False
    try:
        while True:
            events = dict(poller.poll())
            if client in events:
                message = client.recv_multipart()
                if message[0] == b"CALC" and waiting:
                    client.send_multipart([b"CALC-FAIL"])
                else:
                    lib.send_multipart(message)
            if lib in events:
                message = lib.recv_multipart()
                if message[0] == b"TIMEOUT":
                    waiting = True
                    lib.send_multipart([b"READCONFIG"])
                elif message[0] == b"READCONFIG-DONE":
                    waiting = False
                else:
                    client.send_multipart(message)
    except KeyboardInterrupt:
        pass
    finally:
        client.close(linger=0)
        lib.close(linger=0)
        context.term()


if __name__ == "__main__":
    main()
