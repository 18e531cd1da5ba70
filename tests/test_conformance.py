"""The conformance kit: our broker and host pass it, wrong peers fail it by name."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import threadhost.protocol
from tests.bad_peers import echo_router
from tests.conftest import ROOT, free_endpoint, write_mylib_config
from threadhost.conformance import (
    Report,
    assert_conformance,
    checks,
    run_conformance,
)
from threadhost.conformance import _parse_probe as parse_probe
from threadhost.protocol import DEFAULT_MAX_SIZE, ErrorCode

SPEC = (ROOT / "docs" / "protocol.md").read_text("utf-8")
HB = 0.5  # heartbeat timeout of the brokers under test (keeps the liveness checks short)
QUIET = 0.15  # listening for "nothing arrives": forwarding takes microseconds here


# --------------------------------------------------------------------------- checks as data


def _requirements() -> dict[str, str]:
    """R-number -> its sentence, from the spec's numbered requirements."""
    found = re.findall(r"^\*\*(R\d+)\*\*[^\n]*", SPEC, flags=re.M)
    assert len(found) == len(set(found)), "a requirement number is defined twice"
    return {r: r for r in found}


def _coverage_rows() -> dict[str, str]:
    rows = {}
    for line in SPEC.split("## Coverage", 1)[1].splitlines():
        m = re.match(r"^\|\s*(R\d+)\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


@pytest.mark.parametrize("role", ["broker", "host"])
def test_checks_are_data_citing_spec_requirements(role: str) -> None:
    infos = checks(role)  # type: ignore[arg-type]
    assert len({c.id for c in infos}) == len(infos)
    reqs = _requirements()
    rows = _coverage_rows()
    for c in infos:
        assert c.requirement in reqs, f"{c.id} cites {c.requirement}, not in docs/protocol.md"
        assert f"`{c.id}`" in rows[c.requirement], f"coverage table misses {c.id}"


def test_spec_has_numbered_musts_and_a_complete_coverage_table() -> None:
    reqs = _requirements()
    numbers = sorted(int(r[1:]) for r in reqs)
    assert numbers == list(range(1, len(numbers) + 1))
    assert len(numbers) >= 20
    rows = _coverage_rows()
    assert set(rows) == set(reqs), "every requirement needs a coverage row"
    cited = {c.id for role in ("broker", "host") for c in checks(role)}  # type: ignore[arg-type]
    in_table = set(re.findall(r"`((?:broker|gate|host)\.[a-z-]+)`",
                              SPEC.split("## Coverage", 1)[1]))
    assert in_table == cited, in_table ^ cited


def _coverage_cells() -> dict[str, tuple[str, str]]:
    """R-number -> (its 'checked on the wire by' cell, its 'not observable because' cell)."""
    cells = {}
    for req, line in _coverage_rows().items():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        assert len(parts) == 4, f"{req}: a coverage row has 4 cells: {line}"
        cells[req] = (parts[2], parts[3])
    return cells


def test_every_coverage_row_names_a_kit_check_or_says_why_none_can_exist() -> None:
    kit = {c.id for role in ("broker", "host") for c in checks(role)}  # type: ignore[arg-type]
    by_requirement: dict[str, set[str]] = {}
    for role in ("broker", "host"):
        for c in checks(role):  # type: ignore[arg-type]
            by_requirement.setdefault(c.requirement, set()).add(c.id)
    for req, (checked_by, reason) in _coverage_cells().items():
        named = set(re.findall(r"`((?:broker|gate|host)\.[a-z-]+)`", checked_by))
        assert named <= kit, f"{req} names checks the kit does not have: {named - kit}"
        assert named or reason.strip(" —-"), (
            f"{req}: no kit check and no reason why the wire cannot show it")
        assert by_requirement.get(req, set()) <= named, f"{req}: its checks go in its row"


def test_the_kit_computes_the_fingerprint_as_adapters_do() -> None:
    # one algorithm: the kit recomputes it from a description alone (as a peer in another
    # language must), the adapter from its signatures, the independent host by hand
    from examples.mylib_adapter import Mylib
    from tests import bad_peers, conformance_adapters, proxy_types_adapter
    from threadhost.adapter import fingerprint_of as of_calls
    from threadhost.adapter import inspect_adapter

    def fingerprint_of(description: dict[str, object]) -> str:
        return of_calls(description["calls"])  # type: ignore[arg-type]

    classes = [Mylib, conformance_adapters.Big, conformance_adapters.Unfit,
               conformance_adapters.Counted, proxy_types_adapter.Types,
               proxy_types_adapter.MylibV2, proxy_types_adapter.LocalDataclass,
               proxy_types_adapter.MixinEnum, proxy_types_adapter.LocalModelResult,
               proxy_types_adapter.EnumWithMethods]
    for cls in classes:
        spec = inspect_adapter(cls)
        described = msgpack_roundtrip(spec.describe())
        assert fingerprint_of(described) == spec.fingerprint, cls
        assert fingerprint_of({**described, "doc": "other", "adapter": "x:Y"}) == spec.fingerprint
    changed = msgpack_roundtrip(inspect_adapter(Mylib).describe())
    changed["calls"][0]["name"] += "2"
    assert fingerprint_of(changed) != inspect_adapter(Mylib).fingerprint
    assert fingerprint_of({"calls": bad_peers.CALLS}) == bad_peers.fingerprint(bad_peers.CALLS)


def msgpack_roundtrip(value: dict[str, object]) -> dict[str, object]:
    """``value`` as a peer receives it: through msgpack (tuples become lists...)."""
    import msgpack

    return msgpack.unpackb(msgpack.packb(value, use_bin_type=True), raw=False)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("schema", "wrong"),
    [
        ({"type": "integer"}, {"__conformance__": [1]}),
        ({"type": "object"}, [["__conformance__"]]),
        ({"type": ["object", "array"]}, "__conformance__"),
        ({"anyOf": [{"type": "object"}, {"type": "array"}, {"type": "string"}]}, None),
        ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"__conformance__": [1]}),
        ({"$ref": "#/$defs/Mode", "$defs": {"Mode": {"enum": ["a"], "type": "string"}}},
         {"__conformance__": [1]}),
        ({"$ref": "#/$defs/P", "$defs": {"P": {"type": "object", "properties": {}}}},
         [["__conformance__"]]),
    ],
)
def test_wrongly_typed_values_are_of_a_type_the_schema_does_not_admit(
        schema: dict[str, object], wrong: object) -> None:
    from threadhost.conformance.core import wrong_value

    assert wrong_value(schema) == (wrong,)


@pytest.mark.parametrize("schema", [{}, {"$ref": "#/$defs/Point"}, {"allOf": [{}]},
                                    {"anyOf": [{"type": "integer"}, {"$ref": "#/$defs/P"}]},
                                    {"type": ["object", "array", "string", "null"]}])
def test_no_wrong_value_when_the_kit_cannot_tell_the_types(schema: dict[str, object]) -> None:
    from threadhost.conformance.core import wrong_value

    assert wrong_value(schema) is None


def test_protocol_docstring_and_spec_agree() -> None:
    doc = threadhost.protocol.__doc__ or ""
    assert "docs/protocol.md" in doc
    assert "0x54 | 0x48" in doc and "| 0x54 | 0x48 | version |" in SPEC
    assert f"{DEFAULT_MAX_SIZE:,}" in SPEC  # 1,048,576
    for code in ErrorCode:
        assert f"`{code.value}`" in SPEC
    for kind in ("call", "result", "error", "describe", "description", "maintain",
                 "maintain_reply", "status", "status_reply", "ping", "pong", "ready",
                 "heartbeat", "shutdown", "goodbye"):
        assert f"### `{kind}`" in SPEC
        assert kind in doc


def test_probe_option_parsing() -> None:
    assert parse_probe("calc:[5]") == ("calc", [5])
    assert parse_probe('calc:{"x": 5}') == ("calc", {"x": 5})
    assert parse_probe("calc") == ("calc", [])
    assert parse_probe("calc:5") == ("calc", [5])
    with pytest.raises(ValueError, match="not JSON"):
        parse_probe("calc:[5")


# --------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def attach_broker(flaw: str | None = None) -> Iterator[tuple[str, str]]:
    """A broker in attach mode (ours, or ours with one rule broken) on free endpoints."""
    ep, bep = free_endpoint(), free_endpoint()
    if flaw is None:
        cmd = [sys.executable, "-m", "threadhost", "broker", "--endpoint", ep, "--backend", bep,
               "--heartbeat-timeout", f"{HB}s", "--log-level", "ERROR"]
    else:
        cmd = [sys.executable, "-m", "tests.bad_peers", "broker", "--endpoint", ep,
               "--backend", bep, "--flaw", flaw, "--heartbeat-timeout", str(HB)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_listening(ep, proc)
        yield ep, bep
    finally:
        if flaw is None:  # ours must stop cleanly (no host is left after the kit ran)
            proc.terminate()
            assert proc.wait(10) == 0
        else:  # a broken broker may not stop (it may wait for a dead host forever)
            proc.kill()
            proc.wait(10)


def _wait_listening(endpoint: str, proc: subprocess.Popen[bytes]) -> None:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"the broker never listened on {endpoint} (exit {proc.poll()})")


def mini_host(flaw: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "tests.bad_peers", "host", "--connect", "{endpoint}"]
    return cmd + (["--flaw", flaw] if flaw else [])


def failed(report: Report) -> dict[str, str]:
    return {r.check: r.requirement for r in report.failures}


# --------------------------------------------------------------------------- ours pass



@pytest.mark.e2e
def test_our_broker_conforms() -> None:
    with attach_broker() as (ep, bep):
        t0 = time.monotonic()  # the back end by mistake: silent to a client, stop at once
        mistake = run_conformance(bep, timeout=0.5)
        assert time.monotonic() - t0 < 3
        report = run_conformance(ep, "broker", backend=bep, heartbeat_timeout=HB, timeout=2.0,
                                 quiet=QUIET)
    assert failed(mistake) == {"broker.ping": "R23"}
    assert "not its back end" in mistake.failures[0].detail
    assert report.ok, report.format()
    # only the CURVE checks need keys (tests/test_security_conformance.py runs them all)
    assert [r.check for r in report.skipped] == ["broker.curve-unknown-key",
                                                 "broker.caller-role"], report.format()
    assert len(report.results) == len(checks("broker"))


@pytest.mark.e2e
def test_our_host_conforms(tmp_path: Path) -> None:
    config = write_mylib_config(tmp_path / "mylib.toml", read_min=0.7, read_max=0.7)
    cmd = [sys.executable, "-m", "threadhost.host", "examples.mylib_adapter", "--connect",
           "{endpoint}", "--host-id", "kit-host", "--heartbeat", "0.2"]
    report = assert_conformance("tcp://127.0.0.1:*", "host", command=cmd,
                                env={"MYLIB_CONFIG": str(config)}, probe="calc:[5]",
                                slow="read_config", heartbeat_interval=0.2, timeout=2.0,
                                quiet=QUIET, strict=True)
    assert report.result("host.probe").detail == "calc -> 6"
    assert "busy_id=777" in report.result("host.slow-call").detail


@pytest.mark.e2e
def test_an_independent_host_implementation_conforms() -> None:
    report = run_conformance("tcp://127.0.0.1:*", "host", command=mini_host(),
                             probe=("add", [2, 3]), slow="reload", counter="runs",
                             heartbeat_interval=0.25, timeout=2.0, quiet=QUIET)
    assert report.ok and not report.skipped, report.format()
    assert report.result("host.bad-types").detail.endswith("counter runs unmoved")
    assert "each answered once" in report.result("host.calls-while-busy").detail
    assert "answered result(id=779), then goodbye" in report.result(
        "host.shutdown-finishes").detail
    assert report.result("host.run-order").detail == "3 probes answered in arrival order"
    assert report.result("host.shutdown-queued").detail == (
        "answered result(id=778) before goodbye")


@pytest.mark.e2e
def test_our_host_conforms_with_a_counter_showing_refused_calls_run_no_library_code() -> None:
    cmd = [sys.executable, "-m", "threadhost.host", "tests.conformance_adapters:Counted",
           "--connect", "{endpoint}", "--heartbeat", "0.2"]
    report = assert_conformance("tcp://127.0.0.1:*", "host", command=cmd, probe=("add", [1, 2]),
                                counter="runs", slow="reload", heartbeat_interval=0.2,
                                timeout=2.0, quiet=QUIET, strict=True)
    assert report.result("host.bad-types").detail == "refused add(a, b); counter runs unmoved"
    assert report.result("host.version").detail.endswith("counter runs unmoved by the probe "
                                                         "in them")
    assert "each answered once" in report.result("host.calls-while-busy").detail
    assert "then goodbye" in report.result("host.shutdown-finishes").detail


# --------------------------------------------------------------------------- wrong peers fail


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flaw", "check", "requirement", "says"),
    [
        ("bogus-fingerprint", "host.fingerprint", "R59", "ready.fingerprint is 'x'"),
        ("runs-bad-types", "host.bad-types", "R39", "but the library ran"),
        ("takes-unknown-codes", "host.malformed", "R22", "error with an unknown code"),
        ("drops-while-busy", "host.calls-while-busy", "R38", "were never answered"),
        ("answers-broker-kinds", "host.unexpected-kinds", "R10", "describe"),
        ("answers-hb-garbage", "host.heartbeat-garbage", "R22", "the heartbeat socket sent"),
        ("talks-after-goodbye", "host.after-goodbye", "R42", "after goodbye the call socket"),
        ("abandons-on-shutdown", "host.shutdown-finishes", "R42", "never answered"),
        ("runs-other-versions-quietly", "host.version", "R14", "but it ran: the counter"),
        ("ignores-stranger", "host.re-announce", "R51", "marked stranger"),
        ("runs-newest-first", "host.run-order", "R38", "in the order"),
        ("drops-queued-on-shutdown", "host.shutdown-queued", "R42", "never answered"),
    ],
)
def test_wrong_hosts_fail_the_new_checks_a_right_one_passes(flaw: str, check: str,
                                                             requirement: str, says: str) -> None:
    options = {"probe": ("add", [2, 3]), "slow": "reload", "counter": "runs",
               "heartbeat_interval": 0.25, "timeout": 1.0, "quiet": QUIET, "select": [check]}
    wrong = run_conformance("tcp://127.0.0.1:*", "host", command=mini_host(flaw), **options)
    assert failed(wrong) == {check: requirement}, wrong.format()
    assert says in wrong.result(check).detail, wrong.format()
    right = run_conformance("tcp://127.0.0.1:*", "host", command=mini_host(), strict=True,
                            **options)
    assert right.ok, right.format()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flaw", "select", "check", "requirement"),
    [
        ("no-echo", ["host.ids"], "host.ids", "R9"),
        ("no-heartbeat", ["host.sockets", "host.heartbeat"], "host.heartbeat", "R41"),
        ("runs-other-versions", ["host.version"], "host.version", "R14"),
        ("answers-twice", ["host.answer-once"], "host.answer-once", "R38"),
        ("no-goodbye", ["host.shutdown"], "host.shutdown", "R42"),
        ("no-re-announce", ["host.re-announce"], "host.re-announce", "R51"),
        ("always-re-announce", ["host.re-announce"], "host.re-announce", "R51"),
    ],
)
def test_wrong_hosts_fail_the_right_requirement(flaw: str, select: list[str], check: str,
                                                requirement: str) -> None:
    report = run_conformance("tcp://127.0.0.1:*", "host", command=mini_host(flaw),
                             heartbeat_interval=0.25, timeout=0.5, quiet=QUIET, select=select)
    assert failed(report).get(check) == requirement, report.format()
    if flaw == "no-heartbeat":
        assert failed(report)["host.sockets"] == "R3"
    if flaw == "no-re-announce":
        assert "got no ready on" in report.result(check).detail, report.format()
    if flaw == "always-re-announce":
        assert "were answered with ready again" in report.result(check).detail, report.format()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flaw", "select", "expected"),
    [
        ("no-echo", ["broker.ping", "broker.ids"], {"broker.ping": "R23", "broker.ids": "R9"}),
        ("forward-busy", ["gate.no-forward-maintaining", "gate.drain"],
         {"gate.no-forward-maintaining": "R29", "gate.drain": "R29"}),
        ("silent-on-garbage", ["broker.malformed"], {"broker.malformed": "R19"}),
        ("ignores-version", ["broker.version", "gate.version-call"],
         {"broker.version": "R13", "gate.version-call": "R12"}),
        ("no-liveness", ["gate.heartbeat-timeout"], {"gate.heartbeat-timeout": "R44"}),
        ("no-broker-heartbeat", ["gate.broker-heartbeat", "gate.stranger-heartbeat"],
         {"gate.broker-heartbeat": "R52"}),
        ("unmarked-stranger", ["gate.stranger-heartbeat"], {"gate.stranger-heartbeat": "R52"}),
        ("maintain-all", ["gate.pool"], {"gate.pool": "R53"}),
        ("serves-bad-start", ["gate.startup-failure"], {"gate.startup-failure": "R55"}),
        ("no-quarantine", ["gate.poison"], {"gate.poison": "R57"}),
        ("no-halt", ["gate.canary", "gate.canary-error"],
         {"gate.canary": "R56", "gate.canary-error": "R56"}),
        ("maintain-anything", ["gate.maintain-unknown"], {"gate.maintain-unknown": "R26"}),
        ("hb-only-life", ["gate.call-socket-life"], {"gate.call-socket-life": "R44"}),
        ("drops-client-kinds", ["broker.client-kinds"], {"broker.client-kinds": "R10"}),
        ("beats-on-call-socket", ["gate.host-sockets", "gate.call-socket-life"],
         {"gate.host-sockets": "R3"}),
        ("maintain-needs-name", ["gate.maintain"], {"gate.maintain": "R26"}),
        ("no-ping-when-busy", ["gate.ping-busy"], {"gate.ping-busy": "R23"}),
        ("restarts-on-ready", ["gate.ready-again"], {"gate.ready-again": "R52"}),
    ],
)
def test_wrong_brokers_fail_the_right_requirement(flaw: str, select: list[str],
                                                  expected: dict[str, str]) -> None:
    with attach_broker(flaw) as (ep, bep):
        report = run_conformance(ep, "broker", backend=bep, heartbeat_timeout=HB, timeout=0.5,
                                 quiet=QUIET, select=select)
    assert failed(report) == expected, report.format()


@pytest.mark.e2e
def test_an_echo_socket_fails_and_assert_conformance_lists_the_failures() -> None:
    with echo_router("tcp://127.0.0.1:*") as ep, pytest.raises(AssertionError) as info:
        assert_conformance(ep, "broker", timeout=1.0,
                           select=["broker.ping", "broker.version", "broker.malformed"])
    text = str(info.value)
    assert "DOES NOT CONFORM" in text
    for line in ("FAIL  R23  broker.ping", "FAIL  R13  broker.version",
                 "FAIL  R19  broker.malformed"):
        assert line in text, text
    assert "was answered with ping(id=1)" in text


def run_cli(*args: str, timeout: float = 30) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "threadhost", "conformance", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc, time.monotonic() - t0


@pytest.mark.e2e
def test_nothing_listening_fails_clearly_within_seconds() -> None:
    proc, took = run_cli(free_endpoint(), "--timeout", "500ms")
    assert proc.returncode == 1 and took < 6, (proc, took)
    first = proc.stdout.splitlines()[0]
    assert first.startswith("FAIL  R23  broker.ping") and "nothing accepted" in first
    assert "DOES NOT CONFORM" in proc.stdout.splitlines()[-1]


@pytest.mark.e2e
def test_a_listener_that_is_not_zeromq_fails_clearly() -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(srv.accept()[0])  # accept, then say nothing

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        report = run_conformance(f"tcp://127.0.0.1:{srv.getsockname()[1]}", timeout=1.0)
        assert time.monotonic() - t0 < 5
    finally:
        stop.set()
        t.join(2)
        for c in accepted:
            c.close()
        srv.close()
    assert failed(report) == {"broker.ping": "R23"}
    assert "nothing accepted a ZeroMQ connection" in report.failures[0].detail


@pytest.mark.e2e
def test_host_role_with_no_host_fails_clearly() -> None:
    t0 = time.monotonic()
    report = run_conformance(free_endpoint(), "host", wait=0.5, timeout=1.0)
    assert time.monotonic() - t0 < 3
    assert failed(report) == {"host.sockets": "R3"}
    assert "no host connected" in report.failures[0].detail


@pytest.mark.e2e
def test_cli_against_a_served_adapter_without_backend(service_factory: object) -> None:
    svc = service_factory()  # type: ignore[operator]
    svc.wait_state("ready")
    proc, _ = run_cli(svc.endpoint, "--timeout", "2s")
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    lines = out.splitlines()
    assert len(lines) == len(checks("broker")) + 1
    assert re.search(r"^PASS  R32  gate\.unknown-call .*calc|read_config", out, flags=re.M)
    assert "SKIP  R30  gate.busy-maintaining" in out and "needs --backend" in out
    assert lines[-1].endswith("skipped") and "conforms" in lines[-1]


def test_skips_pass_unless_strict() -> None:
    # gate.open needs --backend: skipped without touching the network
    lenient = run_conformance(free_endpoint(), select=["gate.open"])
    assert lenient.ok and [r.status for r in lenient.results] == ["SKIP"]
    assert not run_conformance(free_endpoint(), select=["gate.open"], strict=True).ok
    assert not run_conformance(free_endpoint(), select=["no.such.check"]).ok  # ran nothing


@pytest.mark.e2e
def test_a_result_over_the_size_limit_is_answered_with_an_error() -> None:
    # R18: before the fix the host sent the 2 MB body; a broker drops it unread and the
    # caller waits in vain while the call stays in flight
    report = assert_conformance("tcp://127.0.0.1:*", "host",
                                spawn="tests.conformance_adapters:Big",
                                probe=("big", [2_000_000]), timeout=2.0, quiet=QUIET,
                                select=["host.probe"])
    detail = report.result("host.probe").detail
    assert detail.startswith("big -> error remote_exception: the result could not be encoded")


@pytest.mark.parametrize("size", [1, 20, 31, 32, 33, 255, 256, 300, 65535, 65536, 70000,
                                  DEFAULT_MAX_SIZE, DEFAULT_MAX_SIZE + 1])
def test_sized_bodies_are_exact(size: int) -> None:
    from threadhost.conformance.core import packb, sized_body

    fields = {"kind": "ping", "id": 1}
    if size < len(packb({**fields, "pad": b""})):
        with pytest.raises(ValueError):
            sized_body(fields, size)
    else:
        assert len(sized_body(fields, size)) == size
