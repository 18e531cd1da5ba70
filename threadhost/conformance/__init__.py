"""The protocol conformance kit: prove that a broker or a host speaks ``docs/protocol.md``.

Command line::

    threadhost conformance ENDPOINT [--role broker] [--backend BACKEND]
    threadhost conformance ENDPOINT --role host [--spawn MODULE | --exec "CMD {endpoint}"]

* ``--role broker`` (default): ENDPOINT is a broker's client endpoint. The kit acts as
  clients; with ``--backend`` (the broker's back end; the broker must run in attach mode
  with no host: ``threadhost broker --endpoint EP --backend BEP``) it also acts as a fake
  host it controls, to check the busy gate, routing and liveness. Without ``--backend``
  those checks are reported as skipped.
* ``--role host``: the kit binds ENDPOINT as a fake broker and waits for a host to connect,
  or starts one itself (``--spawn examples.mylib_adapter``, or ``--exec`` for a host
  written in another language; ``{endpoint}`` in the command is replaced by the bound
  endpoint, so ``tcp://127.0.0.1:*`` works).

One line per check: ``PASS|FAIL|SKIP  R<n>  <check id>  <detail>``; the exit status is 0
only when no check failed (``--strict``: and none was skipped). Every wait is bounded;
an endpoint where nothing listens fails within ``--timeout`` seconds.

From Python (and pytest)::

    from threadhost.conformance import assert_conformance, run_conformance
    report = run_conformance("tcp://127.0.0.1:6000", backend="tcp://127.0.0.1:6002")
    assert report.ok, report.format()
    assert_conformance("tcp://127.0.0.1:*", role="host", spawn="mypkg.adapter")

The checks are data (:func:`checks`): each names the requirement (R-number) of
``docs/protocol.md`` it proves; the spec's coverage table lists them all.
"""

from __future__ import annotations

import fnmatch
import json
import shlex
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

import click

from threadhost.conformance.broker import BROKER_CHECKS, BrokerSession
from threadhost.conformance.core import Aborted, Blocked, Check, CheckFailed, CheckSkipped, Session
from threadhost.conformance.host import HOST_CHECKS, HostSession, spawn_command
from threadhost.conformance.security import kit_keys, use_keys
from threadhost.protocol import DEFAULT_MAX_SIZE

__all__ = [
    "CheckInfo",
    "CheckResult",
    "Report",
    "assert_conformance",
    "checks",
    "conformance_command",
    "run_conformance",
]

Role = Literal["broker", "host"]
Status = Literal["PASS", "FAIL", "SKIP"]


@dataclass(frozen=True)
class CheckInfo:
    """What a check proves (for listings and the spec's coverage table)."""

    id: str
    requirement: str
    title: str
    role: Role
    needs_backend: bool


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    check: str
    requirement: str
    title: str
    status: Status
    detail: str
    seconds: float

    def line(self) -> str:
        return f"{self.status}  {self.requirement:<4} {self.check:<28} {self.detail}"


@dataclass
class Report:
    """All results of one run. ``ok``: no check failed."""

    role: Role
    endpoint: str
    results: list[CheckResult] = field(default_factory=list)
    strict: bool = False

    @property
    def ok(self) -> bool:
        bad: set[str] = {"FAIL", "SKIP"} if self.strict else {"FAIL"}
        return bool(self.results) and not any(r.status in bad for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "FAIL"]

    @property
    def skipped(self) -> list[CheckResult]:
        return [r for r in self.results if r.status == "SKIP"]

    def result(self, check_id: str) -> CheckResult:
        for r in self.results:
            if r.check == check_id:
                return r
        raise KeyError(check_id)

    def failed_requirements(self) -> list[str]:
        return sorted({r.requirement for r in self.failures}, key=lambda x: int(x[1:]))

    def summary(self) -> str:
        n = {s: sum(1 for r in self.results if r.status == s) for s in ("PASS", "FAIL", "SKIP")}
        verdict = "conforms" if self.ok else "DOES NOT CONFORM"
        return (f"{self.role} at {self.endpoint}: {verdict} — {n['PASS']} passed, "
                f"{n['FAIL']} failed, {n['SKIP']} skipped")

    def format(self) -> str:
        return "\n".join([*(r.line() for r in self.results), self.summary()])

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "endpoint": self.endpoint, "ok": self.ok,
                "results": [r.__dict__ for r in self.results]}


def checks(role: Role) -> list[CheckInfo]:
    """Every check of ``role``, in run order."""
    suite: Sequence[Check[Any]] = BROKER_CHECKS if role == "broker" else HOST_CHECKS
    return [CheckInfo(c.id, c.requirement, c.title, role, c.needs_backend) for c in suite]


def _selected(check_id: str, select: Iterable[str] | None) -> bool:
    return select is None or any(fnmatch.fnmatchcase(check_id, p) for p in select)


def _run_suite(session: Session, suite: Sequence[Check[Any]], report: Report,
               select: Iterable[str] | None, has_backend: bool,
               on_result: Callable[[CheckResult], None] | None) -> None:
    aborted: str | None = None
    for c in suite:
        if not _selected(c.id, select):
            continue
        t0 = time.monotonic()
        status: Status
        if aborted is not None:
            status, detail = "SKIP", f"not run: {aborted}"
        elif c.needs_backend and not has_backend:
            status, detail = "SKIP", "needs --backend (the kit then also acts as a fake host)"
        else:
            session.begin_check(c.budget(session))
            try:
                detail = c.func(session) or ""
                status = "PASS"
            except CheckFailed as exc:
                status, detail = "FAIL", str(exc)
            except CheckSkipped as exc:
                status, detail = "SKIP", str(exc)
            except Blocked as exc:
                status, detail = "SKIP", f"blocked: precondition '{exc}' failed earlier"
            except Aborted as exc:
                status, detail = "FAIL", str(exc)
                aborted = f"the run stopped at {c.id}"
            finally:
                session.end_check()
        result = CheckResult(c.id, c.requirement, c.title, status, detail,
                             round(time.monotonic() - t0, 3))
        report.results.append(result)
        if on_result is not None:
            on_result(result)


def run_conformance(
    endpoint: str,
    role: Role = "broker",
    *,
    backend: str | None = None,
    spawn: str | None = None,
    command: Sequence[str] | str | None = None,
    env: Mapping[str, str] | None = None,
    probe: tuple[str, Any] | str | None = None,
    slow: str | None = None,
    slow_timeout: float = 60.0,
    counter: str | None = None,
    timeout: float = 3.0,
    quiet: float = 0.25,
    heartbeat_timeout: float = 3.0,
    heartbeat_interval: float = 0.5,
    max_size: int = DEFAULT_MAX_SIZE,
    wait: float = 30.0,
    select: Iterable[str] | None = None,
    strict: bool = False,
    on_result: Callable[[CheckResult], None] | None = None,
    server_key: Any = None,
    secret_key: Any = None,
    caller_key: Any = None,
) -> Report:
    """Run the conformance checks of ``role`` against ``endpoint``; never raises for a
    non-conforming peer (see :func:`assert_conformance`).

    ``timeout``: how long to wait for an expected answer (and for a connection);
    ``quiet``: how long to listen to prove nothing arrives. Broker role: ``backend`` enables
    the fake-host checks; ``heartbeat_timeout`` is the broker's configured one. Host role:
    ``spawn`` (adapter ``MODULE[:CLASS]``) or ``command`` (argv or a shell-like string with
    ``{endpoint}``) starts the host, with ``env`` added to the environment; otherwise the kit
    waits ``wait`` seconds for one to connect. ``probe`` ``("calc", [5])`` or ``"calc:[5]"``
    and ``slow`` name calls the kit may make; ``counter`` a fast call without arguments that
    returns how many library calls ran (so the kit sees that refused calls ran none);
    ``heartbeat_interval`` is the host's.
    ``select``: check ids or glob patterns (``"gate.*"``) to run; preconditions they need are
    set up anyway. Broker role, CURVE (docs/security.md): ``server_key`` (the broker's public
    key) and ``secret_key`` (the kit's key pair; an operator's lets every check run) for
    every client socket, ``caller_key`` (a key of the broker's ``--clients``) for the role
    check; key files or keys.
    """
    if timeout <= 0 or quiet < 0:
        raise ValueError("timeout must be positive and quiet non-negative")
    report = Report(role, endpoint, strict=strict)
    if role == "broker":
        if spawn is not None or command is not None:
            raise ValueError("spawn/command are for role='host'")
        from threadhost.errors import ThreadhostError

        try:
            keys = kit_keys(server_key, secret_key, caller_key)
        except ThreadhostError as exc:
            raise ValueError(str(exc)) from None
        bs = BrokerSession(endpoint, backend, timeout=timeout, quiet=quiet, max_size=max_size,
                           heartbeat_timeout=heartbeat_timeout)
        use_keys(bs, keys)
        try:
            _run_suite(bs, BROKER_CHECKS, report, select, backend is not None, on_result)
        finally:
            bs.close()
        return report
    if role != "host":
        raise ValueError(f"role must be 'broker' or 'host', not {role!r}")
    if backend is not None:
        raise ValueError("backend is for role='broker'")
    if server_key is not None or secret_key is not None or caller_key is not None:
        raise ValueError("keys are for role='broker'")
    argv: list[str] | None = None
    if spawn is not None and command is not None:
        raise ValueError("give spawn or command, not both")
    if spawn is not None:
        argv = spawn_command(spawn)
    elif isinstance(command, str):
        argv = shlex.split(command)
    elif command is not None:
        argv = list(command)
    hs = HostSession(endpoint, command=argv, env=env, probe=_parse_probe(probe), slow=slow,
                     slow_timeout=slow_timeout, counter=counter,
                     heartbeat_interval=heartbeat_interval, wait=wait, timeout=timeout,
                     quiet=quiet, max_size=max_size)
    try:
        _run_suite(hs, HOST_CHECKS, report, select, False, on_result)
    finally:
        hs.close()
    if hs.bound != endpoint:
        report.endpoint = hs.bound
    return report


def assert_conformance(endpoint: str, role: Role = "broker", **options: Any) -> Report:
    """:func:`run_conformance`, raising :class:`AssertionError` listing every failed check
    (for pytest). Returns the report when the peer conforms."""
    report = run_conformance(endpoint, role, **options)
    if not report.ok:
        bad = [r for r in report.results if r.status == "FAIL"
               or (report.strict and r.status == "SKIP")]
        raise AssertionError(
            f"{report.summary()}\n" + "\n".join(r.line() for r in bad)
        )
    return report


def _parse_probe(probe: tuple[str, Any] | str | None) -> tuple[str, Any] | None:
    if probe is None or isinstance(probe, tuple):
        return probe
    name, sep, raw = probe.partition(":")
    if not name:
        raise ValueError(f"bad probe {probe!r}: expected NAME or NAME:JSON_ARGS")
    if not sep or not raw.strip():
        return name, []
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"bad probe {probe!r}: arguments are not JSON: {exc}") from None
    if not isinstance(value, list | dict):
        value = [value]
    return name, value


# --------------------------------------------------------------------------- CLI


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"threadhost: error: {message}", err=True)
    sys.exit(code)


_DUR = "DURATION"


def _seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    from threadhost.policy import PolicyError, parse_duration

    try:
        return parse_duration(value)
    except PolicyError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("endpoint", required=False)
@click.option("--role", type=click.Choice(["broker", "host"]), default="broker",
              show_default=True, help="what runs at ENDPOINT")
@click.option("--backend", default=None, metavar="ENDPOINT",
              help="broker role: the broker's back end; the kit also acts as a fake host "
                   "(broker in attach mode, no host attached)")
@click.option("--spawn", default=None, metavar="MODULE[:CLASS]",
              help="host role: start `threadhost host MODULE --connect ENDPOINT` itself")
@click.option("--exec", "command", default=None, metavar="COMMAND",
              help='host role: start this host command; "{endpoint}" is replaced')
@click.option("--probe", default=None, metavar="NAME[:JSON_ARGS]",
              help='host role: a fast call the kit may make, e.g. "calc:[5]"')
@click.option("--slow", default=None, metavar="NAME",
              help="host role: a slow call the kit may run (watches heartbeats during it)")
@click.option("--counter", default=None, metavar="NAME",
              help="host role: a fast call without arguments returning how many library "
                   "calls ran; shows that refused calls run no library code")
@click.option("--slow-timeout", callback=_seconds, metavar=_DUR, default="60s", show_default=True,
              help="host role: how long the --slow call may take")
@click.option("--timeout", callback=_seconds, metavar=_DUR, default="3s", show_default=True,
              help="wait for an expected answer or a connection")
@click.option("--quiet", callback=_seconds, metavar=_DUR, default="250ms", show_default=True,
              help="listen this long to prove that nothing arrives")
@click.option("--heartbeat-timeout", callback=_seconds, metavar=_DUR, default="3s",
              show_default=True,
              help="broker role: the broker's heartbeat timeout")
@click.option("--heartbeat-interval", callback=_seconds, metavar=_DUR, default="500ms",
              show_default=True,
              help="host role: the host's heartbeat interval")
@click.option("--max-size", type=int, default=DEFAULT_MAX_SIZE, show_default=True,
              help="the peer's body size limit in bytes")
@click.option("--wait", callback=_seconds, metavar=_DUR, default="30s", show_default=True,
              help="host role: how long to wait for a host to connect")
@click.option("--select", "select", multiple=True, metavar="PATTERN",
              help="run only these check ids (glob, repeatable), e.g. 'gate.*'")
@click.option("--strict", is_flag=True, help="a skipped check fails the run too")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--list", "list_only", is_flag=True, help="list the checks and exit")
@click.option("--server-key", metavar="FILE", default=None, envvar="THREADHOST_SERVER_KEY",
              show_envvar=True, help="broker role, CURVE: the broker's public key file")
@click.option("--secret-key", metavar="FILE", default=None, envvar="THREADHOST_SECRET_KEY",
              show_envvar=True,
              help="broker role, CURVE: the kit's NAME.key_secret (an operator's: every "
                   "check can run)")
@click.option("--caller-key", metavar="FILE", default=None,
              help="broker role, CURVE: a NAME.key_secret of the broker's --clients (checks "
                   "that a caller may not maintain)")
def conformance_command(endpoint: str | None, role: Role, backend: str | None,
                        spawn: str | None, command: str | None, probe: str | None,
                        slow: str | None, counter: str | None, slow_timeout: float,
                        timeout: float, quiet: float,
                        heartbeat_timeout: float, heartbeat_interval: float, max_size: int,
                        wait: float, select: tuple[str, ...], strict: bool, as_json: bool,
                        list_only: bool, server_key: str | None, secret_key: str | None,
                        caller_key: str | None) -> None:
    """Check that the broker (or host) at ENDPOINT speaks the threadhost protocol.

    \b
    threadhost conformance tcp://127.0.0.1:6000 --backend tcp://127.0.0.1:6002
    threadhost conformance 'tcp://127.0.0.1:*' --role host --spawn examples.mylib_adapter \\
        --probe 'calc:[5]' --slow read_config

    Prints one line per check (PASS/FAIL/SKIP, requirement of docs/protocol.md, check id)
    and exits 0 only if no check failed.
    """
    if list_only:
        for info in checks(role):
            flag = "  [needs --backend]" if info.needs_backend else ""
            click.echo(f"{info.requirement:<4} {info.id:<28} {info.title}{flag}")
        return
    if endpoint is None:
        _fail("missing ENDPOINT (see --help)")
    from threadhost.cli import check_endpoint  # one line and exit 2 for a bogus endpoint

    check_endpoint(endpoint, "ENDPOINT", bind=role == "host")
    if backend is not None:
        check_endpoint(backend, "--backend")
    if role == "broker" and (spawn or command or probe or slow or counter):
        _fail("--spawn, --exec, --probe, --slow and --counter are for --role host")
    if role == "host" and backend:
        _fail("--backend is for --role broker")
    if spawn and command:
        _fail("give --spawn or --exec, not both")
    if role == "host" and not (spawn or command):
        click.echo(f"waiting up to {wait:g}s for a host to connect to {endpoint} "
                   f"(start one with: threadhost host MODULE --connect {endpoint})", err=True)
    try:
        report = run_conformance(
            endpoint, role, backend=backend, spawn=spawn, command=command, probe=probe,
            slow=slow, slow_timeout=slow_timeout, counter=counter, timeout=timeout, quiet=quiet,
            heartbeat_timeout=heartbeat_timeout, heartbeat_interval=heartbeat_interval,
            max_size=max_size, wait=wait, select=select or None, strict=strict,
            on_result=None if as_json else (lambda r: click.echo(r.line())),
            server_key=server_key, secret_key=secret_key, caller_key=caller_key,
        )
    except ValueError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    if not report.results:
        _fail(f"no check matches --select {' '.join(select)} (see --list)", 2)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(report.summary())
    sys.exit(0 if report.ok else 1)
