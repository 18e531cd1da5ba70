"""The seed's ``mylib_proxy.py``: what ``prog`` imports instead of mylib.

``init()`` creates the context and a PAIR socket, connects to ``service.py`` and sends
``INIT``; ``calc(x)`` sends ``['CALC', str(x)]`` and returns the integer of the
``CALC-RESULT``, or ``None`` after a ``CALC-FAIL`` (the seed writes it to the console and
returns; here it is counted instead, see ``failures``); ``uninit()`` sends ``UNINIT``.
There are no request ids: the next message is taken as the answer.
"""

from __future__ import annotations

from typing import Any

import zmq

_context: zmq.Context[Any] | None = None
_socket: zmq.Socket[Any] | None = None
failures = 0


def init(endpoint: str = "tcp://127.0.0.1:6000") -> None:
    global _context, _socket
    _context = zmq.Context()
    _socket = _context.socket(zmq.PAIR)
    _socket.connect(endpoint)
    _socket.send_multipart([b"INIT"])


def calc(x: int) -> int | None:
    global failures
    if _socket is None:
        raise RuntimeError("call init() first")
    _socket.send_multipart([b"CALC", str(x).encode()])
    message = _socket.recv_multipart()
    if message[0] == b"CALC-RESULT":
        return int(message[1])
    failures += 1  # CALC-FAIL: mylib is in readConfig
    return None


def uninit() -> None:
    global _context, _socket
    if _socket is not None:
        _socket.send_multipart([b"UNINIT"])
        _socket.close(linger=1000)
        _socket = None
    if _context is not None:
        _context.term()
        _context = None
