"""Bad input and load accounting against a live service (small sizes; the documented stress
runs use the same code with 100 k frames and 50 x 2 000 calls)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import threadhost
from threadhost.protocol import HEADER
from threadhost.tools.stress import ManagedService, backend_of, run_fuzz, run_load

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def live() -> Iterator[ManagedService]:
    svc = ManagedService(extra=("--restart-limit", "1000"))
    yield svc
    assert svc.stop() == 0


@pytest.fixture(scope="module")
def raw(live: ManagedService) -> Iterator[zmq.Socket[Any]]:
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(live.endpoint)
    yield s
    s.close(0)
    ctx.term()


_frame = st.one_of(
    st.binary(max_size=64),
    st.just(HEADER),
    st.builds(lambda b: HEADER[:2] + bytes([b]), st.integers(0, 255)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=st.lists(_frame, min_size=1, max_size=4))
def test_random_frames_never_break_the_broker(live: ManagedService, raw: zmq.Socket[Any],
                                              frames: list[bytes]) -> None:
    raw.send_multipart(frames)
    while raw.poll(20):  # answered (typed protocol error) or dropped; never a crash
        reply = raw.recv_multipart()
        if frames[0] == b"":  # a REQ-style empty delimiter is echoed back
            assert reply[0] == b""
            reply = reply[1:]
        assert reply[0] == HEADER and len(reply) == 2


@pytest.fixture(scope="module")
def raw_backend(live: ManagedService) -> Iterator[zmq.Socket[Any]]:
    backend = backend_of(live.endpoint)
    assert backend is not None
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.ROUTING_ID, b"intruder")
    s.connect(backend)
    yield s
    s.close(0)
    ctx.term()


_host_kinds = st.sampled_from(["ready", "result", "error", "heartbeat", "goodbye", "call"])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(frames=st.one_of(
    st.lists(_frame, min_size=1, max_size=4),
    st.builds(lambda kind, rid, extra: [HEADER, msgpack.packb({"kind": kind, "id": rid,
                                                               "host_id": extra})],
              _host_kinds, st.integers(0, 2**32), st.sampled_from(["h1", "h2", "", "x/hb"])),
))
def test_random_frames_on_the_host_facing_socket_are_dropped(
    live: ManagedService, raw_backend: zmq.Socket[Any], frames: list[bytes]
) -> None:
    raw_backend.send_multipart(frames)
    assert not raw_backend.poll(5)  # the broker never answers an unknown peer on this side


def test_service_unharmed_after_hypothesis_runs(live: ManagedService) -> None:
    with threadhost.connect(live.endpoint, timeout=5.0) as lib:
        assert [lib.calc(i) for i in range(20)] == [i + 1 for i in range(20)]
        st_ = lib.status()
    assert st_["restart_count"] == 0 and st_["state"] == "ready"


def test_fuzz_both_sockets_then_still_serving_with_flat_memory(live: ManagedService) -> None:
    backend = backend_of(live.endpoint)
    assert backend and backend.startswith("ipc://")
    report = run_fuzz(live.endpoint, 4000, seed=1, backend=backend)
    assert report.still_serving and report.restarts == 0
    assert report.replies > 3000  # client-facing garbage is answered, not silently eaten
    assert report.growth_mb < 8.0, report.table()
    with threadhost.connect(live.endpoint, timeout=5.0) as lib:
        assert lib.calc(41) == 42


def test_load_every_call_answered_exactly_once_across_maintenances_and_crashes(
    live: ManagedService,
) -> None:
    report = run_load(live.endpoint, clients=4, calls=1500, timeout=5.0,
                      maintain_every=0.3, crash_every=1.0)
    print(report.table())
    assert report.issued == 6000
    assert report.answered == report.issued
    assert report.timeouts == 0 and report.wrong_results == 0
    assert report.late_or_duplicate_replies == 0 and report.over_deadline == 0
    assert report.maintenances >= 1 and report.crashes_injected >= 1
    assert report.restarts == report.crashes_injected
    assert report.outcomes.get("ok", 0) > 1000
    assert set(report.outcomes) <= {"ok", "BusyError", "UnavailableError", "HostCrashedError"}
    assert report.ok
