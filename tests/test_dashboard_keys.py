"""The dashboard with CURVE keys (docs/dashboard.md, docs/security.md): real `threadhost
serve` and `threadhost dashboard` processes, keys made with `threadhost keys new`, the
dashboard's HTTP API read with the standard library (no browser).

* an operator key: the snapshot shows ``ready`` and the hosts, maintenance starts;
* a caller key (given through the environment): calls work, the reduced status renders,
  maintenance answers ``denied`` (permission denied);
* an unknown key, no key, a wrong server key: the state ``unauthenticated`` and why,
  within seconds, on the page and in the log;
* ``serve --dashboard`` with CURVE: its dashboard gets an operator key made for the run,
  through a pipe (not its command line nor its environment), and shows ``ready``;
* a dashboard on an address others can reach is refused without ``--insecure``.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import threadhost
from tests.conftest import free_endpoint
from tests.keys_helpers import Keys, Proc, run_threadhost, start_threadhost
from threadhost.dashboard import listen_is_local
from threadhost.dashboard.model import Rates, Tracker, error_answer, problem_of, snapshot

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

TARGET = "tests.adapters_security:Counted"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def service(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A CURVE service (callers: alice; operators: olga); its endpoint."""
    folder = tmp_path_factory.mktemp("dashkeys-service")
    endpoint = free_endpoint()
    svc = start_threadhost(["serve", TARGET, "--endpoint", endpoint, *keys.server_args()],
                           folder / "serve.log", {"SECURITY_COUNT_FILE": str(folder / "count")})
    try:
        with threadhost.connect(endpoint, timeout=5.0, server_key=str(keys.public("broker")),
                                secret_key=str(keys.secret("olga"))) as client:
            deadline = time.monotonic() + 60
            while True:
                assert svc.proc.poll() is None, svc.log()
                try:
                    if threadhost.Client.status(client).get("state") == "ready":
                        break
                except threadhost.ThreadhostError:
                    pass
                assert time.monotonic() < deadline, svc.log()
                time.sleep(0.1)
        yield endpoint
    finally:
        svc.stop()


def _get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.load(response)


def _post(base: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _until(base: str, proc: Proc, check: Callable[[dict[str, Any]], bool],
           limit: float = 30.0) -> dict[str, Any]:
    """The first snapshot that passes ``check`` (the dashboard may still be starting)."""
    deadline = time.monotonic() + limit
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, proc.log()
        try:
            last = _get(base, "/api/snapshot")
            if check(last):
                return dict(last)
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"no such snapshot within {limit}s: {last}\n{proc.log()}")


@pytest.fixture
def dashboard(service: str, tmp_path: Path) -> Iterator[Callable[..., tuple[str, Proc]]]:
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> tuple[str, Proc]:
        port = _free_port()
        proc = start_threadhost(["dashboard", service, "--listen", f"127.0.0.1:{port}",
                                 *args], tmp_path / f"dashboard-{len(started)}.log", env)
        started.append(proc)
        return f"http://127.0.0.1:{port}", proc

    yield start
    for proc in started:
        proc.stop()


# --------------------------------------------------------------------------- end to end


@pytest.mark.timeout(120)
def test_an_operator_key_sees_everything_and_maintains(keys: Keys, dashboard: Any) -> None:
    base, proc = dashboard("--server-key", str(keys.public("broker")),
                           "--secret-key", str(keys.secret("olga")))
    snap = _until(base, proc, lambda s: s["state"] == "ready")
    assert snap["problem"] is None and snap["reduced"] is False
    assert snap["hosts"] and snap["hosts"][0]["pid"]
    reply = _post(base, "/api/maintain", {"call": None})
    assert reply == {"outcome": "ok", "started": True, "reason": reply["reason"]}, reply
    called = _post(base, "/api/call", {"method": "work", "values": {"text": "hi"}})
    assert called["outcome"] == "ok" and called["result"] == "HI", called


@pytest.mark.timeout(120)
def test_a_caller_key_calls_and_is_denied_maintenance(keys: Keys, dashboard: Any) -> None:
    # the keys through the environment, as for every client command
    base, proc = dashboard(env={"THREADHOST_SERVER_KEY": str(keys.public("broker")),
                                "THREADHOST_SECRET_KEY": str(keys.secret("alice"))})
    snap = _until(base, proc, lambda s: s["state"] == "ready")
    assert snap["reduced"] is True and snap["problem"] is None
    assert snap["hosts"] == [] and snap["running"] == [] and snap["counters"] == {}
    described = _get(base, "/api/describe")
    assert described["outcome"] == "ok"
    assert [c["name"] for c in described["calls"]] == ["work"]
    called = _post(base, "/api/call", {"method": "work", "values": {"text": "hi"}})
    assert called["outcome"] == "ok" and called["result"] == "HI", called
    denied = _post(base, "/api/maintain", {"call": None})
    assert denied["outcome"] == "denied", denied
    assert denied["error"] == "PermissionDeniedError"
    assert "permission denied" in denied["message"], denied
    # the reduced status is said once in the log, not at every sample
    assert proc.log().count("reduced status") == 1, proc.log()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("who", ["unknown key", "no key", "wrong server key"])
def test_a_refused_key_is_a_clear_state_within_seconds(keys: Keys, dashboard: Any,
                                                       who: str) -> None:
    args = {"unknown key": ["--server-key", str(keys.public("broker")),
                            "--secret-key", str(keys.secret("eve"))],
            "no key": [],
            "wrong server key": ["--server-key", str(keys.public("eve")),
                                 "--secret-key", str(keys.secret("olga"))]}[who]
    why = {"unknown key": "refused this client's key",
           "no key": "requires CURVE keys",
           "wrong server key": "wrong server key?"}[who]
    base, proc = dashboard(*args)
    began = time.monotonic()
    snap = _until(base, proc, lambda s: s["state"] != "unreachable"
                  or s["problem"] != "no answer yet", limit=30.0)
    waited = time.monotonic() - began
    assert snap["state"] == "unauthenticated", snap
    assert snap["problem"].startswith("authentication failed: "), snap
    assert why in snap["problem"], snap
    assert waited < 20.0, waited  # not a hang: the control deadline is 2 s
    called = _post(base, "/api/call", {"method": "work", "values": {"text": "hi"}})
    assert called["outcome"] == "unauthenticated", called
    assert called["error"] == "AuthenticationError"
    deadline = time.monotonic() + 10
    while "authentication failed" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.log().count("authentication failed") == 1, proc.log()


@pytest.mark.timeout(120)
def test_serve_gives_its_dashboard_an_operator_key_through_a_pipe(
        keys: Keys, tmp_path: Path) -> None:
    port = _free_port()
    endpoint = free_endpoint()
    svc = start_threadhost(["serve", TARGET, "--endpoint", endpoint, *keys.server_args(),
                            "--dashboard", f"127.0.0.1:{port}"], tmp_path / "serve.log",
                           {"SECURITY_COUNT_FILE": str(tmp_path / "count"),
                            # a client's keys in serve's environment are not the dashboard's
                            "THREADHOST_SERVER_KEY": str(keys.public("broker")),
                            "THREADHOST_SECRET_KEY": str(keys.secret("alice"))})
    try:
        base = f"http://127.0.0.1:{port}"
        snap = _until(base, svc, lambda s: s["state"] == "ready", limit=60.0)
        assert snap["reduced"] is False and snap["hosts"], snap  # an operator's status
        reply = _post(base, "/api/maintain", {"call": None})
        assert reply["outcome"] == "ok" and reply["started"] is True, reply
        # the dashboard's secret is neither on its command line nor in its environment
        child = _dashboard_child(svc.proc.pid)
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        assert b"--keys-stdin" in cmdline
        assert not [a for a in cmdline + environ if b"key_secret" in a or
                    a.startswith((b"THREADHOST_SECRET_KEY=", b"THREADHOST_SERVER_KEY="))]
    finally:
        svc.stop()
    assert "Traceback" not in svc.log(), svc.log()


def _dashboard_child(parent: int) -> int:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"dashboard" in cmdline:
            return int(entry.name)
    raise AssertionError(f"no dashboard process under {parent}")


# --------------------------------------------------------------------------- usage


def test_a_dashboard_others_can_reach_needs_insecure(keys: Keys) -> None:
    port = _free_port()
    refused = run_threadhost("dashboard", "tcp://127.0.0.1:1", "--listen", f"0.0.0.0:{port}")
    assert refused.returncode == 2
    assert refused.stderr.startswith(
        f"threadhost: error: --listen 0.0.0.0:{port} is not a loopback address: ")
    assert "--insecure" in refused.stderr and len(refused.stderr.splitlines()) == 1
    served = run_threadhost("serve", TARGET, "--dashboard", f"0.0.0.0:{port}")
    assert served.returncode == 2, served.stderr
    assert served.stderr.startswith(
        f"threadhost: error: --dashboard 0.0.0.0:{port} is not a loopback address: ")
    for local in ("localhost", "[::1]", "127.0.0.2"):
        assert listen_is_local(f"{local}:8765")
    assert not listen_is_local("192.168.1.5:8765") and not listen_is_local("example.org:1")


def test_key_options_are_checked_before_serving(keys: Keys) -> None:
    half = run_threadhost("dashboard", "tcp://127.0.0.1:1", "--server-key",
                          str(keys.public("broker")))
    assert half.returncode == 2, half.stderr
    assert half.stderr.startswith("threadhost: error: CURVE needs both server_key")
    missing = run_threadhost("dashboard", "tcp://127.0.0.1:1", "--server-key",
                             str(keys.public("broker")), "--secret-key",
                             "/nonexistent.key_secret")
    assert missing.returncode == 2 and "cannot read key file" in missing.stderr
    shown = run_threadhost("dashboard", "--help").stdout
    for text in ("--server-key", "--secret-key", "THREADHOST_SERVER_KEY",
                 "THREADHOST_SECRET_KEY", "--insecure"):
        assert text in shown


# --------------------------------------------------------------------------- pure parts


def test_a_reduced_status_renders_as_a_snapshot() -> None:
    from threadhost.transport import CALLER_STATUS_KEYS, reduced_status

    full = {"state": "ready", "adapter": "Counted", "fingerprint": "f", "uptime": 3.0,
            "pool_size": 1, "hosts": [{"id": "h1", "pid": 9}], "counters": {"served": 4},
            "maintenance": {"call": "refresh", "elapsed": 1.0, "expected": 2.0}}
    status = reduced_status(full)
    assert set(status) == {*CALLER_STATUS_KEYS, "reduced"}
    rates, tracker = Rates(), Tracker()
    for t in (0.0, 2.0, 8.0):
        rates.add(t, status)
        tracker.add(t, status)
    snap = snapshot(status, endpoint="e", now=8.0, wall=8.0, rates=rates, tracker=tracker)
    assert snap["state"] == "ready" and snap["reduced"] is True
    assert snap["hosts"] == [] and snap["running"] == [] and snap["maintenances"] == []
    json.dumps(snap)
    assert snapshot(full, endpoint="e", now=8.0, wall=8.0, rates=Rates(),
                    tracker=Tracker())["reduced"] is False


def test_refusals_have_outcomes_of_their_own() -> None:
    denied = error_answer(threadhost.PermissionDeniedError(
        "permission denied: maintain needs an operator key"))
    assert denied["outcome"] == "denied" and denied["retry_after"] is None
    refused = error_answer(threadhost.AuthenticationError("handshake failed"))
    assert refused["outcome"] == "unauthenticated"
    assert problem_of(threadhost.AuthenticationError("x: handshake failed")) == (
        "unauthenticated", "authentication failed: x: handshake failed")
    assert problem_of(threadhost.UnavailableError("gone")) == (
        "unreachable", "UnavailableError: gone")
    snap = snapshot(None, endpoint="e", now=0.0, wall=0.0, rates=Rates(), tracker=Tracker(),
                    problem="authentication failed: x", state="unauthenticated")
    assert snap["state"] == "unauthenticated" and snap["reduced"] is False


class _Refusing:
    """A service whose status is refused (``refuse``: the key) or reduced (a caller)."""

    def __init__(self) -> None:
        self.refuse = True

    async def status(self, timeout: float) -> dict[str, Any]:
        if self.refuse:
            raise threadhost.AuthenticationError("status: e: handshake failed: the service "
                                                 "refused this client's key")
        return {"state": "ready", "adapter": "Counted", "reduced": True}

    async def describe(self, timeout: float) -> dict[str, Any]:
        return {"adapter": "Counted", "calls": []}

    async def call(self, method: str, args: list[Any], kwargs: dict[str, Any],
                   timeout: float) -> Any:
        raise AssertionError("not called")

    async def maintain(self, call: str | None, timeout: float) -> tuple[bool, str]:
        raise threadhost.PermissionDeniedError(
            "permission denied: maintain needs an operator key")

    async def close(self) -> None:
        pass


def test_the_routes_say_refused_and_denied_and_the_log_says_it_once(
        caplog: pytest.LogCaptureFixture) -> None:
    from starlette.testclient import TestClient

    from threadhost.dashboard.app import Settings, create_app

    service = _Refusing()
    app = create_app(Settings("tcp://127.0.0.1:1"), lambda settings: service, sample=False)
    with caplog.at_level("INFO", logger="threadhost.dashboard"), TestClient(app) as web:
        for _ in range(3):
            snap = web.get("/api/snapshot").json()
            assert snap["state"] == "unauthenticated", snap
            assert snap["problem"].startswith("authentication failed: status: e: handshake")
        denied = web.post("/api/maintain", json={"call": None}).json()
        assert denied["outcome"] == "denied" and "permission denied" in denied["message"]
        service.refuse = False
        for _ in range(2):
            snap = web.get("/api/snapshot").json()
            assert snap["state"] == "ready" and snap["reduced"] is True
    lines = [r.getMessage() for r in caplog.records if r.name == "threadhost.dashboard"]
    assert len(lines) == 2, lines
    assert "authentication failed" in lines[0] and "reduced status" in lines[1]
