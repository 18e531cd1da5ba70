"""A fault campaign against real ``threadhost serve`` processes, every call accounted for.

    python -m benchmarks.faults                 # 100 rounds with --hosts 1, 100 with --hosts 2
    python -m benchmarks.faults --quick         # one round of each fault per pool size (~30 s)
    python -m benchmarks.faults --rounds 30 --hosts 1 --json /tmp/faults.json

The service is ``threadhost serve tests.adapters_faults:Faulty --policy manual
--restart-limit 1000`` (mylib's adapter plus instance markers and two fault calls; the
restart budget is raised so that a hundred faults in a few minutes measure containment, not
the budget). Caller processes call ``calc(x)`` one call at a time, without pause, on bare
protocol sockets, and record every request: how many answers it got over the whole run,
the first answer and when (:mod:`benchmarks.faults_clients`).

Rounds rotate through six faults, each injected once the service is settled (every host
ready, no maintenance running):

``kill_fast``    a ``work`` call (0.5 s inside the library) is sent; once its host is inside
                 it, that host gets SIGKILL
``kill_slow``    a new configuration (``readConfig`` 0.6 s) and ``maintain``; once a host is
                 inside ``readConfig``, it gets SIGKILL
``abort``        a ``crash(n)`` call: mylib is called from a foreign thread and aborts the
                 process (``os.abort``, SIGABRT) — ``n`` differs each round, so the poison
                 quarantine (keyed by method and arguments) does not refuse it
``bad_reload``   a configuration mylib refuses (``offset = "not a number"``) and
                 ``maintain``: ``readConfig`` raises
``bad_verify``   a configuration mylib applies but ``verify`` refuses (a negative offset) and
                 ``maintain``
``broker_kill``  a new configuration (``readConfig`` 1 s) and ``maintain``; once a host is
                 inside ``readConfig``, ``serve`` gets SIGKILL and a new ``serve`` is started
                 at once on the same endpoint (its hosts wait for the old ones' slot locks)

After ``bad_reload`` and ``bad_verify`` the campaign writes a good configuration as soon as
the service reports the failure (an operator's fix, at once), so that replacements can
start. Every configuration has its own offset (good: ``+g·10⁹``; refused by verify:
``-g·10⁹``), so a result ``calc(x) - x`` names the configuration it was computed with:

* **wrong** — an offset of no configuration, or of one written after the answer arrived;
* **served from a failed state** — an offset of a configuration that failed ``verify``;
* **answered exactly once** — the request got one answer (0: lost, e.g. held by a killed
  broker; 2+: duplicated);
* **max instances** — library instances alive at once (processes between mylib's ``init``
  and ``uninit``, by marker files and pid liveness), sampled every 20 ms during the round;
* **time to serve again** — from the fault to the first good answer to a call sent after it;
* **full strength** — from the fault until every host is ready again.

Results: ``benchmarks/results/faults.json`` (``faults-quick.json`` with ``--quick``) unless
``--json`` says otherwise. Exit status 1 when an invariant breaks (a wrong result, one from a
failed state, a duplicated answer, more instances than hosts). See docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from benchmarks.faults_clients import Callers, Control
from benchmarks.run import machine
from benchmarks.systems import ROOT, free_port

RESULTS = ROOT / "benchmarks" / "results"
ADAPTER = "tests.adapters_faults:Faulty"
KINDS = ["kill_fast", "kill_slow", "abort", "bad_reload", "bad_verify", "broker_kill"]
LABELS = {
    "kill_fast": "host SIGKILL during a fast call",
    "kill_slow": "host SIGKILL during a slow call",
    "abort": "os.abort in the library",
    "bad_reload": "a failing reload",
    "bad_verify": "a reload that fails verify",
    "broker_kill": "broker SIGKILL + restart",
}
GIGA = 10**9


@dataclass(frozen=True)
class Settings:
    rounds: int = 100  # per pool size, rotating through KINDS
    hosts: tuple[int, ...] = (1, 2)
    callers: int = 3
    think_s: float = 0.002  # a caller's pause between calls
    call_timeout_s: float = 0.3  # a caller gives up on a request after this (answers still count)
    read_s: float = 0.1  # readConfig with the ordinary configuration
    work_s: float = 0.5  # the fast call a kill_fast round kills
    slow_read_s: float = 0.6  # readConfig a kill_slow round kills
    broker_read_s: float = 1.0  # readConfig running when a broker_kill round kills serve
    before_s: float = 0.3  # steady calls before each fault
    after_s: float = 0.3  # steady calls after the service is back at full strength
    settle_limit_s: float = 60.0
    kinds: tuple[str, ...] = tuple(KINDS)
    adapter: str = ADAPTER


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(predicate: Any, limit: float, step: float = 0.01) -> Any:
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


# --------------------------------------------------------------------------- instances


class Instances:
    """Library instances alive, sampled every ``every`` seconds: processes with a marker
    (``<pid>.instance``, written before mylib's ``init``, removed after ``uninit``) that
    are alive and not zombies. ``max_by_round`` keeps the maximum per round."""

    def __init__(self, folder: Path, every: float = 0.02) -> None:
        self.folder = folder
        self.every = every
        self.round = -1
        self.max_by_round: dict[int, int] = {}
        self.samples = 0
        self.dead: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="instances")

    def alive(self) -> set[int]:
        pids = set()
        for p in self.folder.glob("*.instance"):
            with contextlib.suppress(ValueError):
                pids.add(int(p.name.split(".")[0]))
        alive = set()
        for pid in pids - self.dead:
            if _alive(pid):
                alive.add(pid)
            else:
                self.dead.add(pid)
        return alive

    def _run(self) -> None:
        while not self._stop.is_set():
            n = len(self.alive())
            r = self.round
            self.samples += 1
            if n > self.max_by_round.get(r, -1):
                self.max_by_round[r] = n
            self._stop.wait(self.every)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# --------------------------------------------------------------------------- the service


class Service:
    """``threadhost serve tests.adapters_faults:Faulty --hosts N`` and its configuration
    file, with the history of every configuration written."""

    def __init__(self, workdir: Path, hosts: int, s: Settings) -> None:
        self.s = s
        self.hosts = hosts
        self.dir = workdir / f"hosts{hosts}"
        self.dir.mkdir(parents=True)
        self.instances = self.dir / "instances"
        self.instances.mkdir()
        self.short = Path(tempfile.mkdtemp(prefix="thf-", dir="/tmp"))  # ipc paths are short
        self.runtime = self.short / "rt"
        self.config = self.dir / "mylib.toml"
        self.log = self.dir / "serve.log"
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.configs: list[dict[str, Any]] = []
        self.generation = 0
        self.serves: list[subprocess.Popen[bytes]] = []
        self.write_config("good", s.read_s)

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        return self.serves[-1]

    def write_config(self, kind: str, read_s: float | None = None) -> dict[str, Any]:
        """``good`` (offset +g·10⁹), ``unfit`` (-g·10⁹: mylib applies it, verify refuses
        it) or ``refused`` (mylib's readConfig raises)."""
        self.generation += 1
        read = self.s.read_s if read_s is None else read_s
        offset: int | None
        if kind == "good":
            offset = self.generation * GIGA
        elif kind == "unfit":
            offset = -self.generation * GIGA
        elif kind == "refused":
            offset = None
        else:
            raise ValueError(kind)
        first = 'offset = "not a number"\n' if offset is None else f"offset = {offset}\n"
        text = f"{first}read_min_seconds = {read}\nread_max_seconds = {read}\n"
        record = {"generation": self.generation, "kind": kind, "offset": offset,
                  "read_s": read, "at": time.monotonic()}  # before the file changes
        self.configs.append(record)
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.config)
        return record

    def spawn(self) -> None:
        env = {**os.environ, "MYLIB_CONFIG": str(self.config),
               "INSTANCES_DIR": str(self.instances),
               "THREADHOST_RUNTIME_DIR": str(self.runtime),
               "PYTHONPATH": os.pathsep.join(
                   [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
                   + [str(ROOT)])}
        with open(self.log, "ab") as log:
            log.write(f"---- serve #{len(self.serves) + 1} at {time.monotonic():.3f}\n".encode())
            log.flush()
            self.serves.append(subprocess.Popen(
                [sys.executable, "-m", "threadhost", "serve", self.s.adapter,
                 "--endpoint", self.endpoint, "--hosts", str(self.hosts),
                 "--policy", "manual", "--restart-limit", "1000", "--log-level", "INFO",
                 "--maintain-budget", "1"],  # maintenances on purpose: no rate limit
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL))

    def marker(self, suffix: str, limit: float) -> int | None:
        """The pid of the first live process with a ``<pid>.<suffix>`` marker."""

        def find() -> int | None:
            for p in self.instances.glob(f"*.{suffix}"):
                with contextlib.suppress(ValueError):
                    pid = int(p.name.split(".")[0])
                    if _alive(pid):
                        return pid
            return None

        pid: int | None = _wait(find, limit, 0.005)
        return pid

    def log_tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def stop(self) -> int | None:
        code = None
        for proc in self.serves:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait(10)
        for marker in self.instances.glob("*.instance"):  # hosts orphaned by a killed serve
            with contextlib.suppress(psutil.NoSuchProcess, ValueError):
                psutil.Process(int(marker.name.split(".")[0])).kill()
        shutil.rmtree(self.short, ignore_errors=True)
        return code


def _settled(st: dict[str, Any] | None, hosts: int) -> bool:
    if st is None or st.get("state") != "ready" or "maintenance" in st:
        return False
    if st.get("rollout", {}).get("state", "halted") != "halted":
        return False
    hs = st.get("hosts", [])
    return len(hs) == hosts and all(h["state"] == "ready" for h in hs)


# --------------------------------------------------------------------------- the campaign


class Campaign:
    def __init__(self, s: Settings, hosts: int, workdir: Path, log: Any) -> None:
        self.s = s
        self.hosts = hosts
        self.log = log
        self.svc = Service(workdir, hosts, s)
        self.ctl: Control | None = None
        self.inst = Instances(self.svc.instances)
        self.rounds: list[dict[str, Any]] = []

    def _say(self, text: str) -> None:
        print(text, file=self.log, flush=True)

    def status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        assert self.ctl is not None
        return self.ctl.status(timeout)

    def settle(self) -> dict[str, Any]:
        """Until every host is ready and no maintenance runs."""
        deadline = time.monotonic() + self.s.settle_limit_s
        last = None
        while time.monotonic() < deadline:
            if self.svc.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.svc.proc.returncode}\n"
                                   f"{self.svc.log_tail()}")
            last = self.status()
            if _settled(last, self.hosts):
                assert last is not None
                return last
            time.sleep(0.01)
        raise RuntimeError(f"the service did not settle within {self.s.settle_limit_s:g}s; "
                           f"last status: {last}\n{self.svc.log_tail()}")

    def _slow_counts(self) -> tuple[int, int]:
        """read_config's completed runs and failures, as the broker counts them."""
        st = self.status() or {}
        rc = st.get("slow_calls", {}).get("read_config", {})
        return int(rc.get("runs", 0)), int(rc.get("failures", 0))

    # -- the faults: each returns (the moment of the fault, details)

    def kill_fast(self, idx: int) -> tuple[float, dict[str, Any]]:
        assert self.ctl is not None
        rid = self.ctl.fault_call("work", [7 * GIGA // 10 + idx, self.s.work_s])
        pid = self.svc.marker("busy", 5.0)
        if pid is None:
            raise RuntimeError("kill_fast: no host went inside the work call")
        os.kill(pid, signal.SIGKILL)
        at = time.monotonic()
        call = self.ctl.wait_answer(rid, 10.0)
        return at, {"pid": pid, "fault_call": rid, "fault_call_outcome": call["outcome"]}

    def kill_slow(self, idx: int) -> tuple[float, dict[str, Any]]:
        assert self.ctl is not None
        self.svc.write_config("good", self.s.slow_read_s)
        if not self.ctl.maintain():
            raise RuntimeError("kill_slow: maintain did not start")
        pid = self.svc.marker("reloading", 5.0)
        if pid is None:
            raise RuntimeError("kill_slow: no host went inside readConfig")
        os.kill(pid, signal.SIGKILL)
        at = time.monotonic()
        self.svc.write_config("good")  # quick reloads again for the replacement
        return at, {"pid": pid}

    def abort(self, idx: int) -> tuple[float, dict[str, Any]]:
        assert self.ctl is not None
        rid = self.ctl.fault_call("crash", [idx])
        at = self.ctl.calls[rid]["t_sent"]
        call = self.ctl.wait_answer(rid, 10.0)
        return at, {"fault_call": rid, "fault_call_outcome": call["outcome"]}

    def _failing_reload(self, kind: str) -> tuple[float, dict[str, Any]]:
        assert self.ctl is not None
        runs, failures = self._slow_counts()
        bad = self.svc.write_config(kind)
        if not self.ctl.maintain():
            raise RuntimeError(f"{kind}: maintain did not start")
        at = time.monotonic()
        # until the slow call ended (the first host's, in a pool), failed or not
        after = _wait(lambda: (lambda c: c if c[0] > runs else None)(self._slow_counts()),
                      10.0, 0.01)
        reported = time.monotonic()
        fix = self.svc.write_config("good")  # the operator's fix, at once
        failed = after is not None and after[1] > failures
        return at, {"failure_reported_after_s": round(reported - at, 3) if failed else None,
                    "bad_generation": bad["generation"], "fixed_generation": fix["generation"]}

    def bad_reload(self, idx: int) -> tuple[float, dict[str, Any]]:
        return self._failing_reload("refused")

    def bad_verify(self, idx: int) -> tuple[float, dict[str, Any]]:
        return self._failing_reload("unfit")

    def broker_kill(self, idx: int) -> tuple[float, dict[str, Any]]:
        assert self.ctl is not None
        self.svc.write_config("good", self.s.broker_read_s)
        if not self.ctl.maintain():
            raise RuntimeError("broker_kill: maintain did not start")
        pid = self.svc.marker("reloading", 5.0)
        if pid is None:
            raise RuntimeError("broker_kill: no host went inside readConfig")
        old = self.svc.proc
        old.kill()
        at = time.monotonic()
        self.svc.spawn()  # at once, same endpoint
        old.wait(10)
        self.svc.write_config("good")
        still = _alive(pid)
        return at, {"host_in_slow_call": pid, "that_host_alive_after_kill": still}

    # -- rounds

    def run(self) -> None:
        s = self.s
        self.svc.spawn()
        self.ctl = Control(self.svc.endpoint)
        self.inst.start()
        callers = None
        try:
            self.settle()
            callers = Callers(s.callers, self.svc.endpoint, timeout=s.call_timeout_s,
                              think=s.think_s)
            time.sleep(0.5)  # connected and warm
            for idx in range(s.rounds):
                kind = s.kinds[idx % len(s.kinds)]
                before = self.settle()
                start = time.monotonic()
                self.inst.round = idx
                time.sleep(s.before_s)
                at, details = getattr(self, kind)(idx)
                st = self.settle()
                full = time.monotonic()
                time.sleep(s.after_s)
                self.rounds.append({
                    "round": idx, "kind": kind, "start": start, "fault_at": at,
                    "full_strength_s": round(full - at, 3),
                    "restarts": (st["restart_count"] - before["restart_count"]
                                 if kind != "broker_kill" else st["restart_count"]),
                    **details,
                })
                self._say(f"  --hosts {self.hosts} round {idx + 1}/{s.rounds} {kind}: "
                          f"full strength after {full - at:.2f}s")
            end = time.monotonic()
            self.inst.round = -1
            windows = [(r["start"], nxt["start"] if nxt else end, r["fault_at"])
                       for r, nxt in zip(self.rounds, [*self.rounds[1:], None], strict=True)]
            self.results = callers.stop(windows)
            callers = None
            assert self.ctl is not None
            self.ctl.drain(0.5)
        finally:
            if callers is not None:
                with contextlib.suppress(Exception):
                    callers.stop([])
            self.inst.stop()
            if self.ctl is not None:
                self.ctl.close()
            self.exit_code = self.svc.stop()

    # -- accounting

    def _config_of(self, offset: int) -> dict[str, Any] | None:
        for c in self.svc.configs:
            if c["offset"] == offset:
                return c
        return None

    def report(self) -> dict[str, Any]:
        assert self.ctl is not None
        rounds = []
        for i, r in enumerate(self.rounds):
            wins = [w["windows"][i] for w in self.results]
            outcomes: Counter[str] = Counter()
            for w in wins:
                outcomes.update(w["outcomes"])
            wrong = failed = 0
            by_config: Counter[str] = Counter()
            for w in wins:
                for off_s, (count, first) in w["offsets"].items():
                    cfg = self._config_of(int(off_s))
                    if cfg is None or cfg["kind"] == "refused" or cfg["at"] >= first:
                        wrong += count
                    elif cfg["kind"] == "unfit":
                        failed += count
                    else:
                        by_config[str(cfg["generation"])] += count
            firsts = [w["first_ok_after_fault"] for w in wins
                      if w["first_ok_after_fault"] is not None]
            serve_again = round(min(firsts) - r["fault_at"], 3) if firsts else None
            row = {
                **{k: v for k, v in r.items() if k not in ("start", "fault_at")},
                "calls": sum(w["calls"] for w in wins),
                "answered_once": sum(w["answered_once"] for w in wins),
                "no_answer": sum(w["no_answer"] for w in wins),
                "answered_twice_or_more": sum(w["answered_twice_or_more"] for w in wins),
                "answered_late": sum(w["answered_late"] for w in wins),
                "unsent": sum(w["unsent"] for w in wins),
                "outcomes": dict(outcomes),
                "ok_by_config_generation": dict(by_config),
                "wrong_results": wrong,
                "served_from_failed_state": failed,
                "max_instances": self.inst.max_by_round.get(i),
                "time_to_serve_again_s": serve_again,
                "max_latency_s": round(max(w["max_latency"] for w in wins), 3),
            }
            call = self.ctl.calls.get(r.get("fault_call", -1))
            if call is not None:
                row["fault_call_answers"] = call["answers"]
            rounds.append(row)
        kinds = {}
        for kind in KINDS:
            rs = [r for r in rounds if r["kind"] == kind]
            if not rs:
                continue
            outcomes = Counter()
            for r in rs:
                outcomes.update(r["outcomes"])
            times = [r["time_to_serve_again_s"] for r in rs]
            known = [t for t in times if t is not None]
            full = [r["full_strength_s"] for r in rs]
            fault_calls = [r for r in rs if "fault_call_answers" in r]
            kinds[kind] = {
                "label": LABELS[kind],
                "rounds": len(rs),
                "calls": sum(r["calls"] for r in rs),
                "answered_once": sum(r["answered_once"] for r in rs),
                "no_answer": sum(r["no_answer"] for r in rs),
                "answered_twice_or_more": sum(r["answered_twice_or_more"] for r in rs),
                "answered_late": sum(r["answered_late"] for r in rs),
                "outcomes": dict(sorted(outcomes.items(), key=lambda kv: -kv[1])),
                "wrong_results": sum(r["wrong_results"] for r in rs),
                "served_from_failed_state": sum(r["served_from_failed_state"] for r in rs),
                "max_instances": max((r["max_instances"] or 0) for r in rs),
                "time_to_serve_again_s": {
                    "median": round(statistics.median(known), 3) if known else None,
                    "max": max(known) if known else None,
                    "never": len(times) - len(known)},
                "full_strength_s": {"median": round(statistics.median(full), 3),
                                    "max": max(full)},
                "restarts": sum(r["restarts"] for r in rs),
                "fault_calls": len(fault_calls),
                "fault_calls_answered_once": sum(1 for r in fault_calls
                                                 if r["fault_call_answers"] == 1),
                "fault_call_outcomes": dict(Counter(
                    r.get("fault_call_outcome") for r in fault_calls)),
            }
        return {"hosts": self.hosts, "rounds": len(rounds), "by_kind": kinds,
                "instance_samples": self.inst.samples,
                "configs_written": len(self.svc.configs),
                "serve_exit_code": self.exit_code,
                "stray_replies": sum(w["stray_replies"] for w in self.results),
                "protocol_errors": sum(w["protocol_errors"] for w in self.results),
                "per_round": rounds}


# --------------------------------------------------------------------------- report


def violations(variant: dict[str, Any]) -> list[str]:
    out = []
    for kind, k in variant["by_kind"].items():
        where = f"--hosts {variant['hosts']} {kind}"
        if k["wrong_results"]:
            out.append(f"{where}: {k['wrong_results']} wrong results")
        if k["served_from_failed_state"]:
            out.append(f"{where}: {k['served_from_failed_state']} results from a failed state")
        if k["answered_twice_or_more"]:
            out.append(f"{where}: {k['answered_twice_or_more']} calls answered more than once")
        if k["max_instances"] > variant["hosts"]:
            out.append(f"{where}: {k['max_instances']} library instances alive at once")
        if kind != "broker_kill" and k["no_answer"]:
            out.append(f"{where}: {k['no_answer']} calls never answered")
        if k["fault_calls"] != k["fault_calls_answered_once"]:
            out.append(f"{where}: a fault call was not answered exactly once")
    if variant["stray_replies"] or variant["protocol_errors"]:
        out.append(f"--hosts {variant['hosts']}: {variant['stray_replies']} stray replies, "
                   f"{variant['protocol_errors']} undecodable")
    return out


def _fmt_s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table(report: dict[str, Any]) -> str:
    out = []
    for v in report["variants"]:
        out.append(f"--hosts {v['hosts']}: {v['rounds']} rounds, "
                   f"{report['settings']['callers']} callers")
        head = (f"  {'fault':<33} {'rounds':>6} {'calls':>7} {'answered':>8} {'no':>5} "
                f"{'twice':>5} {'wrong':>5} {'failed':>6} {'max':>4} "
                f"{'serve again s':>13} {'full strength s':>15} {'restarts':>8}")
        sub = (f"  {'':<33} {'':>6} {'':>7} {'once':>8} {'answer':>5} "
               f"{'':>5} {'':>5} {'state':>6} {'inst':>4} {'median / max':>13} "
               f"{'median / max':>15} {'':>8}")
        out += [head, sub]
        for k in v["by_kind"].values():
            t, f = k["time_to_serve_again_s"], k["full_strength_s"]
            serve = f"{_fmt_s(t['median'])} / {_fmt_s(t['max'])}"
            if t["never"]:
                serve += f" ({t['never']} never)"
            out.append(
                f"  {k['label']:<33} {k['rounds']:>6} {k['calls']:>7} {k['answered_once']:>8} "
                f"{k['no_answer']:>5} {k['answered_twice_or_more']:>5} {k['wrong_results']:>5} "
                f"{k['served_from_failed_state']:>6} {k['max_instances']:>4} {serve:>13} "
                f"{_fmt_s(f['median']) + ' / ' + _fmt_s(f['max']):>15} {k['restarts']:>8}")
        out.append("  outcomes (first answer of each call):")
        for kind, k in v["by_kind"].items():
            text = ", ".join(f"{name} {n}" for name, n in k["outcomes"].items())
            extra = ""
            if k["fault_calls"]:
                extra = (f"; the fault calls: {k['fault_calls_answered_once']}/"
                         f"{k['fault_calls']} answered once, "
                         + ", ".join(f"{o} {n}" for o, n in k["fault_call_outcomes"].items()))
            out.append(f"    {kind:<12} {text}{extra}")
        out.append("")
    bad = report["violations"]
    out.append("verdict: " + ("OK" if not bad else "VIOLATION\n  " + "\n  ".join(bad)))
    return "\n".join(line.rstrip() for line in out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.faults", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per pool size, rotating through the six faults "
                             "(default 100; --quick: 6, one of each)")
    parser.add_argument("--quick", action="store_true", help="one round of each fault")
    parser.add_argument("--hosts", default="1,2",
                        help="comma-separated pool sizes to run the campaign with (default 1,2)")
    parser.add_argument("--callers", type=int, default=Settings.callers,
                        help="caller processes (default %(default)s)")
    parser.add_argument("--kinds", default=",".join(KINDS),
                        help="comma-separated faults to rotate through (default: all six)")
    parser.add_argument("--adapter", default=ADAPTER,
                        help="the adapter to serve (default %(default)s; "
                             "tests.adapters_faults:Unverified is the negative control: no "
                             "verify, so bad_verify rounds must be caught serving a bad state)")
    parser.add_argument("--json", type=Path, default=None,
                        help="write results here (default benchmarks/results/faults.json, "
                             "or faults-quick.json with --quick)")
    ns = parser.parse_args(argv)
    hosts = tuple(int(h) for h in ns.hosts.split(",") if h)
    if not hosts or min(hosts) < 1:
        parser.error("--hosts: give pool sizes of 1 or more")
    kinds = tuple(k for k in ns.kinds.split(",") if k)
    if not kinds or set(kinds) - set(KINDS):
        parser.error(f"--kinds: choose from {', '.join(KINDS)}")
    rounds = ns.rounds if ns.rounds is not None else (len(kinds) if ns.quick else 100)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    s = Settings(rounds=rounds, hosts=hosts, callers=ns.callers, kinds=kinds,
                 adapter=ns.adapter)
    info = machine()
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="threadhost-faults-"))
    variants = []
    keep = False
    try:
        for n in hosts:
            print(f"fault campaign: --hosts {n}, {rounds} rounds...", file=sys.stderr, flush=True)
            camp = Campaign(s, n, workdir, sys.stderr)
            try:
                camp.run()
            except BaseException:
                keep = True
                print(f"logs kept in {workdir}", file=sys.stderr)
                raise
            variants.append(camp.report())
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    elapsed = time.monotonic() - t0
    bad = [msg for v in variants for msg in violations(v)]
    command = "python -m benchmarks.faults" + (" --quick" if ns.quick else "") + (
        f" --rounds {ns.rounds}" if ns.rounds is not None else "") + (
        f" --hosts {ns.hosts}" if ns.hosts != "1,2" else "") + (
        f" --callers {ns.callers}" if ns.callers != Settings.callers else "") + (
        f" --kinds {ns.kinds}" if kinds != tuple(KINDS) else "") + (
        f" --adapter {ns.adapter}" if ns.adapter != ADAPTER else "")
    report = {
        "mode": "quick" if ns.quick else "full",
        "command": command,
        "settings": asdict(s),
        "machine": info,
        "elapsed_s": round(elapsed, 1),
        "ok": not bad,
        "violations": bad,
        "variants": variants,
    }
    print(f"\nthreadhost fault campaign ({report['mode']}, {elapsed:.0f}s) on {info['cpu']}, "
          f"{info['cores']} cores, Python {info['python']}, libzmq {info['libzmq']}")
    print(table(report))
    path = ns.json or RESULTS / ("faults-quick.json" if ns.quick else "faults.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nJSON: {path}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
