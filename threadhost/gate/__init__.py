"""The broker's gate: a pure decision core for a pool of hosts (no sockets, no clock).

Theory of operation
-------------------
The broker shell feeds the gate *events* — a client request arrived, a host said ready,
answered, sent a heartbeat, said goodbye, its process exited, the clock reached a wake-up
time — each with ``now`` (monotonic seconds). The gate answers with *actions* (send this to
that client or host, start a host, kill one, log, stop) and changes nothing outside itself.

* Each host is its own process with its own library instance on its own thread. A fast
  call goes to a host in rotation with the fewest calls in flight
  (:mod:`~threadhost.gate.routing`); a call no host can take is refused at once with
  ``busy`` or ``unavailable`` and a measured ``retry_after``.
* Maintenance runs as a staggered rollout: one host at a time leaves the rotation, runs
  the slow call and comes back (:mod:`~threadhost.gate.maintenance`). With two hosts or
  more, someone always serves; with one, callers get ``busy`` while it runs.
* A host that dies is replaced while the others serve; its in-flight calls get ``crashed``
  (outcome unknown). Failures count against one restart budget for the pool
  (:mod:`~threadhost.gate.supervision`); ``failed`` when it is spent.
* Service and host states move only through transition tables
  (:mod:`~threadhost.gate.states`); an illegal move raises.
"""

from threadhost.gate.actions import Action, KillHost, Log, StartHost, Stopped, ToClient, ToHost
from threadhost.gate.config import GateConfig
from threadhost.gate.core import Gate
from threadhost.gate.states import GateState, HostState, IllegalTransition

__all__ = [
    "Action",
    "Gate",
    "GateConfig",
    "GateState",
    "HostState",
    "IllegalTransition",
    "KillHost",
    "Log",
    "StartHost",
    "Stopped",
    "ToClient",
    "ToHost",
]
