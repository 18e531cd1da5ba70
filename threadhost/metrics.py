"""Prometheus metrics for a broker (``threadhost serve --metrics HOST:PORT``).

Loaded only when asked for (``prometheus_client`` is the optional extra
``threadhost[metrics]``). The gate tells :meth:`Metrics.observe` every call's outcome; the
broker hands :meth:`Metrics.update` a status snapshot now and then (at most once a second),
which the scrape thread reads — it never touches the gate, which belongs to the broker's
thread. Labels are bounded: method names the adapter declares (others are ``(other)``),
outcomes (``ok`` or an error code), slow-call names, states; never arguments.

Metrics:

* ``threadhost_calls_total{method, outcome}`` — every client call and how it ended.
* ``threadhost_call_seconds{method}`` — forwarded calls, from forwarding to the answer.
* ``threadhost_slow_call_seconds{call, outcome}`` — slow calls (start-up and maintenance).
* ``threadhost_host_restarts_total`` — hosts replaced (the lifetime count).
* ``threadhost_state{state}`` — 1 for the service's state, 0 for the others.
* ``threadhost_hosts{state}`` — hosts by state; ``threadhost_hosts_ready`` — in rotation.
* ``threadhost_in_flight`` — fast calls in flight on hosts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["STATES", "Metrics", "parse_listen"]

STATES = ("starting", "startup", "ready", "maintaining", "restarting", "failed", "stopping",
          "stopped")
HOST_STATES = ("starting", "waiting", "startup", "ready", "stuck", "draining", "maintaining",
               "stopping")
_FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                 5.0, 10.0, 30.0, 60.0)
_SLOW_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, host 127.0.0.1; port 0: any free port) -> (host, port);
    ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {text!r}")
    return (host.strip("[]") or "127.0.0.1"), int(port)


class _Snapshot(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Any]:
        st = self._m.snapshot
        state = GaugeMetricFamily("threadhost_state", "1 for the service's state",
                                  labels=["state"])
        for name in STATES:
            state.add_metric([name], 1.0 if st.get("state") == name else 0.0)
        yield state
        hosts = list(st.get("hosts") or [])
        by_state = GaugeMetricFamily("threadhost_hosts", "hosts by state", labels=["state"])
        for name in HOST_STATES:
            by_state.add_metric([name], float(sum(1 for h in hosts if h.get("state") == name)))
        yield by_state
        yield GaugeMetricFamily("threadhost_hosts_ready", "hosts in rotation",
                                value=float(sum(1 for h in hosts if h.get("state") == "ready")))
        yield GaugeMetricFamily("threadhost_in_flight", "fast calls in flight on hosts",
                                value=float(st.get("in_flight") or 0))
        yield CounterMetricFamily("threadhost_host_restarts", "hosts replaced",
                                  value=float(st.get("restart_count") or 0))


class Metrics:
    """The broker's metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter("threadhost_calls", "client calls by method and outcome",
                             ["method", "outcome"], registry=self.registry)
        self.latency = Histogram("threadhost_call_seconds",
                                 "forwarded calls: forwarding to answer", ["method"],
                                 buckets=_FAST_BUCKETS, registry=self.registry)
        self.slow = Histogram("threadhost_slow_call_seconds", "slow call durations",
                              ["call", "outcome"], buckets=_SLOW_BUCKETS,
                              registry=self.registry)
        self.snapshot: Mapping[str, Any] = {}
        self.registry.register(_Snapshot(self))

    def observe(self, kind: str, name: str, outcome: str, seconds: float) -> None:
        """The gate's observer: one call's (or slow call's) outcome."""
        if kind == "slow":
            self.slow.labels(name, outcome).observe(seconds)
            return
        self.calls.labels(name, outcome).inc()
        if seconds > 0.0:
            self.latency.labels(name).observe(seconds)

    def update(self, status: Mapping[str, Any]) -> None:
        """A fresh status snapshot (a new dict each time: the scrape thread reads it)."""
        self.snapshot = status

    def serve(self, listen: str) -> tuple[str, int]:
        """Expose the metrics over HTTP at ``listen`` (``HOST:PORT``) in a daemon thread."""
        host, port = parse_listen(listen)
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        bound = server.server_address
        return str(bound[0]), int(bound[1])
