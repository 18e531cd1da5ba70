"""When a host sends its ``ready`` again (docs/protocol.md §12, R51): the pure decision
:class:`threadhost.host.BrokerWatch`, with injected time (no sockets, no sleeps)."""

from __future__ import annotations

from threadhost.host import BrokerWatch

T = 3.0  # the broker timeout


def announced(at: float = 10.0) -> BrokerWatch:
    w = BrokerWatch(T)
    w.announced(at)
    return w


def test_nothing_before_the_first_ready() -> None:
    w = BrokerWatch(T)
    assert w.beat("a", False, 1.0) is None
    assert w.beat("b", False, 1.1) is None
    assert w.beat("b", True, 1.2) is None  # even a stranger mark: ready is yet to come


def test_the_same_token_within_the_timeout_is_not_answered() -> None:
    w = announced()
    assert w.beat("a", False, 10.5) is None
    assert w.beat("a", False, 11.0) is None
    assert w.beat("a", False, 13.9) is None  # 2.9 s after the last one


def test_a_new_token_gets_ready_again_once() -> None:
    w = announced()
    assert w.beat("a", False, 10.5) is None
    assert w.beat("b", False, 11.0) == "a new broker"
    assert w.beat("b", False, 11.5) is None


def test_a_silence_gets_ready_again_even_with_the_same_token() -> None:
    w = announced()
    assert w.beat("a", False, 10.5) is None
    assert not w.silent(13.4)
    assert w.silent(13.6)  # once
    assert not w.silent(20.0)
    assert w.beat("a", False, 20.0) == "a broker after 9.5s of silence"
    assert not w.gone
    assert w.beat("a", False, 20.5) is None


def test_the_first_beat_long_after_ready_gets_ready_again() -> None:
    w = announced(10.0)
    assert not w.silent(20.0)  # no broker heard yet: nothing to report
    assert w.beat("a", False, 13.5) == "a broker after 3.5s of silence"


def test_a_broker_killed_before_its_first_heartbeat() -> None:
    # the broker that got our ready died before it beat; a new one starts at once: its
    # heartbeats are the first we hear, soon after our ready, all with one token. Without
    # the stranger mark nothing tells them apart from the broker that got the ready ...
    w = announced(10.0)
    assert w.beat("new", False, 10.3) is None
    # ... with it (the new broker answers a host it has not adopted), ready again
    w = announced(10.0)
    assert w.beat("new", True, 10.3) == "a broker that has no ready from this host"
    assert w.beat("new", True, 10.8) is not None  # still a stranger: again
    assert w.beat("new", False, 11.3) is None  # adopted: its beats are plain


def test_a_stranger_mark_counts_whatever_the_token_history() -> None:
    w = announced()
    assert w.beat("a", False, 10.5) is None
    assert w.beat("a", True, 11.0) is not None  # the same broker forgot us (declared dead)
