"""threadhost.gate.states on its own: the state enums, every row of both transition tables
(each allowed move, each illegal one raising with the state unchanged) and the precedence
of :func:`service_state`. Pure: no sockets, no clock."""

from __future__ import annotations

import itertools
import typing

import pytest

from threadhost.gate import states
from threadhost.gate.pool import HostRecord
from threadhost.gate.states import (
    HOST_TRANSITIONS,
    SERVICE_TRANSITIONS,
    GateState,
    HostState,
    IllegalTransition,
    advance,
    service_state,
)

G = GateState
H = HostState

# The tables as the design says they are, written out in full (not derived from the code).
SERVICE_ALLOWED: dict[GateState, set[GateState]] = {
    G.STARTING: {G.STARTUP, G.READY, G.FAILED, G.STOPPING, G.STOPPED},
    G.STARTUP: {G.STARTING, G.READY, G.MAINTAINING, G.RESTARTING, G.FAILED, G.STOPPING,
                G.STOPPED},
    G.READY: {G.STARTUP, G.MAINTAINING, G.RESTARTING, G.FAILED, G.STOPPING, G.STOPPED},
    G.MAINTAINING: {G.STARTUP, G.READY, G.RESTARTING, G.FAILED, G.STOPPING, G.STOPPED},
    G.RESTARTING: {G.STARTUP, G.READY, G.MAINTAINING, G.FAILED, G.STOPPING, G.STOPPED},
    G.FAILED: {G.STOPPING, G.STOPPED},
    G.STOPPING: {G.STOPPED},
    G.STOPPED: set(),
}

HOST_ALLOWED: dict[HostState, set[HostState]] = {
    H.STARTING: {H.STARTUP, H.STOPPING},
    H.STARTUP: {H.READY, H.STOPPING},
    H.READY: {H.DRAINING, H.MAINTAINING, H.STOPPING},
    H.DRAINING: {H.MAINTAINING, H.READY, H.STOPPING},
    H.MAINTAINING: {H.READY, H.STOPPING},
    H.STOPPING: set(),
}


# --------------------------------------------------------------------------- the enums


def test_service_states_and_their_names() -> None:
    assert [(s.name, s.value) for s in GateState] == [
        ("STARTING", "starting"),
        ("STARTUP", "startup"),
        ("READY", "ready"),
        ("MAINTAINING", "maintaining"),
        ("RESTARTING", "restarting"),
        ("FAILED", "failed"),
        ("STOPPING", "stopping"),
        ("STOPPED", "stopped"),
    ]
    assert GateState("ready") is G.READY and str(G.FAILED) == "failed"


def test_host_states_and_their_names() -> None:
    assert [(s.name, s.value) for s in HostState] == [
        ("STARTING", "starting"),
        ("STARTUP", "startup"),
        ("READY", "ready"),
        ("DRAINING", "draining"),
        ("MAINTAINING", "maintaining"),
        ("STOPPING", "stopping"),
    ]
    assert HostState("draining") is H.DRAINING and str(H.STOPPING) == "stopping"


def test_illegal_transition_is_a_runtime_error() -> None:
    assert issubclass(IllegalTransition, RuntimeError)


# --------------------------------------------------------------------------- the tables


def test_service_table_is_exactly_the_designed_one() -> None:
    assert set(SERVICE_TRANSITIONS) == set(GateState)
    assert {k: set(v) for k, v in SERVICE_TRANSITIONS.items()} == SERVICE_ALLOWED
    assert all(isinstance(v, frozenset) for v in SERVICE_TRANSITIONS.values())


def test_host_table_is_exactly_the_designed_one() -> None:
    assert set(HOST_TRANSITIONS) == set(HostState)
    assert {k: set(v) for k, v in HOST_TRANSITIONS.items()} == HOST_ALLOWED
    assert all(isinstance(v, frozenset) for v in HOST_TRANSITIONS.values())


def test_no_state_lists_itself_as_a_move() -> None:
    for table in (SERVICE_TRANSITIONS, HOST_TRANSITIONS):
        for state, targets in table.items():  # type: ignore[attr-defined]
            assert state not in targets


def test_final_states_only_move_forward() -> None:
    assert SERVICE_TRANSITIONS[G.STOPPED] == frozenset()
    assert SERVICE_TRANSITIONS[G.STOPPING] == frozenset({G.STOPPED})
    assert SERVICE_TRANSITIONS[G.FAILED] == frozenset({G.STOPPING, G.STOPPED})
    assert HOST_TRANSITIONS[H.STOPPING] == frozenset()


SERVICE_PAIRS = list(itertools.product(GateState, GateState))
HOST_PAIRS = list(itertools.product(HostState, HostState))


@pytest.mark.parametrize(("current", "new"), SERVICE_PAIRS,
                         ids=[f"{a.value}->{b.value}" for a, b in SERVICE_PAIRS])
def test_every_service_move(current: GateState, new: GateState) -> None:
    if new is current or new in SERVICE_ALLOWED[current]:
        assert advance(SERVICE_TRANSITIONS, current, new) is new
    else:
        state = current
        with pytest.raises(IllegalTransition) as info:
            state = advance(SERVICE_TRANSITIONS, state, new)
        assert str(info.value) == f"illegal transition {current.value} -> {new.value}"
        assert state is current


@pytest.mark.parametrize(("current", "new"), HOST_PAIRS,
                         ids=[f"{a.value}->{b.value}" for a, b in HOST_PAIRS])
def test_every_host_move(current: HostState, new: HostState) -> None:
    if new is current or new in HOST_ALLOWED[current]:
        assert advance(HOST_TRANSITIONS, current, new) is new
    else:
        with pytest.raises(IllegalTransition) as info:
            advance(HOST_TRANSITIONS, current, new)
        assert str(info.value) == f"illegal transition {current.value} -> {new.value}"


@pytest.mark.parametrize(("current", "new"), HOST_PAIRS,
                         ids=[f"{a.value}->{b.value}" for a, b in HOST_PAIRS])
def test_every_host_record_move_leaves_the_state_unchanged_when_refused(
    current: HostState, new: HostState
) -> None:
    host = HostRecord(host_id="h1", slot=0, started=0.0, last_heartbeat=0.0, state=current)
    if new is current or new in HOST_ALLOWED[current]:
        host.move(new)
        assert host.state is new
    else:
        with pytest.raises(IllegalTransition, match=f"^illegal transition {current.value} -> "
                                                    f"{new.value}$"):
            host.move(new)
        assert host.state is current


def test_staying_put_is_allowed_even_where_the_table_lists_nothing() -> None:
    assert advance(SERVICE_TRANSITIONS, G.STOPPED, G.STOPPED) is G.STOPPED
    assert advance(HOST_TRANSITIONS, H.STOPPING, H.STOPPING) is H.STOPPING


def test_advance_reads_the_table_it_is_given() -> None:
    table = {G.READY: frozenset({G.FAILED}), G.FAILED: frozenset()}
    assert advance(table, G.READY, G.FAILED) is G.FAILED
    with pytest.raises(IllegalTransition, match=r"^illegal transition failed -> ready$"):
        advance(table, G.FAILED, G.READY)
    with pytest.raises(IllegalTransition, match=r"^illegal transition ready -> stopped$"):
        advance(table, G.READY, G.STOPPED)


# --------------------------------------------------------------------------- service_state


def state_of(hosts: list[HostState], *, current: GateState = G.READY, ever_ready: bool = False,
             failed: bool = False, stopping: bool = False, stopped: bool = False) -> GateState:
    return service_state(current, hosts, ever_ready=ever_ready, failed=failed,
                         stopping=stopping, stopped=stopped)


def test_stopped_wins_over_everything() -> None:
    assert state_of([H.READY, H.MAINTAINING], ever_ready=True, failed=True, stopping=True,
                    stopped=True) is G.STOPPED
    assert state_of([], stopped=True) is G.STOPPED


def test_stopping_wins_over_failed_and_hosts() -> None:
    assert state_of([H.READY, H.DRAINING], failed=True, stopping=True) is G.STOPPING
    assert state_of([], stopping=True) is G.STOPPING


def test_failed_wins_over_hosts() -> None:
    assert state_of([H.READY, H.MAINTAINING], ever_ready=True, failed=True) is G.FAILED
    assert state_of([], failed=True) is G.FAILED


@pytest.mark.parametrize("busy", [H.DRAINING, H.MAINTAINING])
def test_a_host_in_maintenance_makes_the_service_maintaining(busy: HostState) -> None:
    assert state_of([busy]) is G.MAINTAINING
    assert state_of([H.READY, busy, H.STARTUP, H.STARTING]) is G.MAINTAINING
    assert state_of([busy, H.READY]) is G.MAINTAINING


def test_draining_alone_and_maintaining_alone_each_count() -> None:
    # each half of "draining or maintaining" on its own, with nothing else that could match
    assert state_of([H.DRAINING, H.STOPPING]) is G.MAINTAINING
    assert state_of([H.MAINTAINING, H.STOPPING]) is G.MAINTAINING


def test_a_ready_host_makes_the_service_ready() -> None:
    assert state_of([H.READY]) is G.READY
    assert state_of([H.STARTING, H.STARTUP, H.READY, H.STOPPING]) is G.READY


def test_a_host_in_startup_makes_the_service_startup() -> None:
    assert state_of([H.STARTUP]) is G.STARTUP
    assert state_of([H.STARTING, H.STARTUP, H.STOPPING], ever_ready=True) is G.STARTUP


@pytest.mark.parametrize("hosts", [[], [H.STARTING], [H.STOPPING], [H.STARTING, H.STOPPING]])
def test_no_serving_host_is_starting_before_first_ready_and_restarting_after(
    hosts: list[HostState]
) -> None:
    assert state_of(hosts, ever_ready=False) is G.STARTING
    assert state_of(hosts, ever_ready=True) is G.RESTARTING


def test_the_current_state_does_not_decide() -> None:
    for current in GateState:
        assert state_of([H.READY], current=current) is G.READY
        assert state_of([], current=current, ever_ready=True) is G.RESTARTING


def test_hosts_may_be_any_iterable_read_once() -> None:
    assert state_of(iter([H.STARTING, H.READY])) is G.READY  # type: ignore[arg-type]
    assert state_of(h for h in [H.STARTUP]) is G.STARTUP  # type: ignore[arg-type]


def test_annotations_resolve_at_run_time() -> None:
    """Tools that read annotations (typing.get_type_hints, documentation) can resolve them."""
    hints = typing.get_type_hints(advance)
    type_var = states.S
    assert hints["current"] is type_var and hints["new"] is type_var
    assert hints["return"] is type_var
    assert type_var.__constraints__ == (GateState, HostState)
    assert typing.get_type_hints(service_state)["return"] is GateState
