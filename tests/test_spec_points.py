"""Points docs/protocol.md settles for implementers, on threadhost's real host process:
a result outside the declared return type (R65), validity before direction (§4, R10), the
host's view of ``call.fingerprint`` (§4), binding (§4, "Argument binding"), and calls that
arrived before ``shutdown`` (R42)."""

from __future__ import annotations

import time
from pathlib import Path

import msgpack
import pytest

from tests.fake_broker import fake_brokers
from threadhost.protocol import (
    HEADER,
    Call,
    ErrorCode,
    ErrorReply,
    Goodbye,
    Ready,
    Result,
    Shutdown,
)

TARGET = "tests.adapters_for_tests:Everything"


@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_settled_points_on_threadhosts_host(tmp_path: Path) -> None:
    with fake_brokers(tmp_path, "pts") as start:
        fb = start(TARGET)
        ready = fb.first(lambda m: isinstance(m, Ready))

        # R65: the library returned a str for an int: remote_exception, never a result
        got = fb.call("wrong_result")
        assert isinstance(got, ErrorReply) and got.code is ErrorCode.REMOTE_EXCEPTION, got
        assert "declared return type" in got.message

        # §4: a host need not check call.fingerprint (the broker did, R33): threadhost's
        # host runs the call whatever it says
        fb.send(Call(id=900, method="scale", args=[1], fingerprint="0" * 64))
        got = fb.first(lambda m: getattr(m, "id", None) == 900)
        assert isinstance(got, Result) and got.value == 2.0, got
        assert ready.fingerprint != "0" * 64

        # §4 binding: positional-only by keyword, a duplicate, an extra positional
        for rid, args, kwargs in ((901, [], {"x": 1}), (902, [1, 2], {"y": 3}),
                                  (903, [1, 2, 3], {})):
            fb.send(Call(id=rid, method="scale", args=args, kwargs=kwargs))
            got = fb.first(lambda m, rid=rid: getattr(m, "id", None) == rid)
            assert isinstance(got, ErrorReply) and got.code is ErrorCode.BAD_ARGUMENTS, got

        # §4 (R10): validity before direction. An error (a kind hosts do not receive) with a
        # code outside §5 is malformed: answered protocol with its readable id; a
        # well-formed one is ignored
        body = msgpack.packb({"kind": "error", "id": 904, "code": "nope"})
        fb.sock.send_multipart([fb.host_id.encode(), HEADER, body])
        got = fb.first(lambda m: getattr(m, "id", None) == 904)
        assert isinstance(got, ErrorReply) and got.code is ErrorCode.PROTOCOL, got
        fb.send(ErrorReply(id=905, code=ErrorCode.BUSY))
        fb.send(Call(id=906, method="scale", args=[2]))  # answered; 905 is not
        got = fb.first(lambda m: getattr(m, "id", None) in (905, 906))
        assert isinstance(got, Result) and got.id == 906, got

        # R42: calls that arrived before shutdown are answered (threadhost runs them)
        # before goodbye; one after it is not
        fb.send(Call(id=907, method="scale", args=[3]))
        fb.send(Call(id=908, method="scale", args=[4]))
        fb.send(Shutdown(reason="test"))
        fb.send(Call(id=909, method="scale", args=[5]))
        deadline = time.monotonic() + 10
        while not any(isinstance(m, Goodbye) for _, _, m in fb.got):
            assert time.monotonic() < deadline, fb.got
            fb.pump(0.05)
        fb.pump(0.5)
        sent = [m for _, who, m in fb.got if who == fb.host_id]
        assert [getattr(m, "id", "goodbye") for m in sent] == [907, 908, "goodbye"], sent
        assert sent[-1].ok
        assert fb.proc.wait(10) == 0
