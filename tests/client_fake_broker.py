"""An in-process fake broker for the client tests (tests/test_client.py): a ROUTER on a free
endpoint that answers as a test script says, on its own thread, without a host or an
adapter behind it."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec.structs
import zmq

from threadhost.protocol import (
    Description,
    ErrorCode,
    ErrorReply,
    MaintainReply,
    Pong,
    Result,
    StatusReply,
    decode_body,
    encode,
)

#: What a handler returns for a call: a value (sent as the result), an ``ErrorReply``,
#: ``SILENT`` (no answer) or ``Later(seconds, reply)``.
SILENT: Any = object()
FAKE_STATUS = {"state": "ready", "fake": True}


class Later:
    """Answer ``reply`` (a value or an ``ErrorReply``) after ``seconds``."""

    def __init__(self, seconds: float, reply: Any) -> None:
        self.seconds = seconds
        self.reply = reply


def busy(rid: int, retry_after: float | None = 0.1) -> ErrorReply:
    return ErrorReply(id=rid, code=ErrorCode.BUSY, message="busy: slow call 'read' running",
                      retry_after=retry_after)


class ClientFakeBroker:
    """A ROUTER at ``endpoint`` (a fresh free one by default).

    ``calls`` maps a call name to ``handler(call) -> reply`` (see :data:`SILENT`,
    :class:`Later`); the adapter it describes declares those names as fast calls (and a
    slow call ``refresh``). ``describe=False``: it answers ``describe`` as a service with no
    host ready yet. ``received`` lists every decoded request, in order.
    """

    def __init__(self, calls: dict[str, Callable[[Any], Any]], endpoint: str | None = None,
                 describe: bool = True) -> None:
        from tests.conftest import free_endpoint

        self.calls = calls
        self.describe = describe
        self.endpoint = endpoint or free_endpoint()
        self.received: list[Any] = []
        #: the ``maintain_reply`` to a ``maintain`` (its id is the request's)
        self.maintain_reply = MaintainReply(id=0, started=True, reason="fake")
        self.error: BaseException | None = None
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.ROUTER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.bind(self.endpoint)
        self._later: list[tuple[float, int, list[bytes]]] = []
        self._order = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def names(self, kind: str | None = None) -> list[str]:
        """Kinds (``call`` messages as their method name) received so far."""
        return [m.method if m.kind == "call" else m.kind for m in self.received
                if kind is None or m.kind == kind]

    def _answer(self, msg: Any) -> Any:
        kind = msg.kind
        if kind == "describe":
            if not self.describe:
                return ErrorReply(id=msg.id, code=ErrorCode.UNAVAILABLE,
                                  message="no host ready yet", retry_after=0.5)
            calls = [{"name": name, "kind": "fast"} for name in self.calls]
            calls.append({"name": "refresh", "kind": "slow"})
            return Description(id=msg.id, adapter={"adapter": "tests.fake:Fake", "calls": calls},
                               fingerprint="f" * 64)
        if kind == "status":
            return StatusReply(id=msg.id, status=dict(FAKE_STATUS))
        if kind == "ping":
            return Pong(id=msg.id)
        if kind == "maintain":
            return msgspec.structs.replace(self.maintain_reply, id=msg.id)
        handler = self.calls.get(msg.method)
        if handler is None:
            return ErrorReply(id=msg.id, code=ErrorCode.UNKNOWN_CALL,
                              message=f"no call {msg.method!r}")
        return handler(msg)

    @staticmethod
    def _frames(rid: int, reply: Any) -> list[bytes]:
        if not isinstance(reply, ErrorReply | Description | StatusReply | Pong | MaintainReply):
            reply = Result(id=rid, value=reply)
        return encode(reply)

    def _run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # a test's handler failed: close() raises it
            self.error = exc

    def _serve(self) -> None:
        sock = self._sock
        while not self._stop.is_set():
            now = time.monotonic()
            while self._later and self._later[0][0] <= now:
                _, _, frames = heapq.heappop(self._later)
                sock.send_multipart(frames)
            wait = 20 if not self._later else max(1, int((self._later[0][0] - now) * 1000))
            if not sock.poll(min(wait, 20)):
                continue
            route, *frames = sock.recv_multipart()
            msg = decode_body(frames[1])
            self.received.append(msg)
            reply = self._answer(msg)
            if reply is SILENT:
                continue
            if isinstance(reply, Later):
                out = self._frames(msg.id, reply.reply)
                heapq.heappush(self._later, (time.monotonic() + reply.seconds,
                                             next(self._order), [route, *out]))
                continue
            sock.send_multipart([route, *self._frames(msg.id, reply)])

    def close(self) -> None:
        """Stop and unbind (idempotent); re-raise an error of the serving thread."""
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(5)
            self._sock.close(linger=0)
            self._ctx.term()
        if self.error is not None:
            raise self.error

    def __enter__(self) -> ClientFakeBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
