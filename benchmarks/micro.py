"""Tight-loop costs without sockets: the codec, and the Python a call runs through in the
broker.

* codec: encode + decode of one ``call`` (``calc(5)``, timeout set) with
  :mod:`threadhost.protocol`, against the floor's ``msgpack`` pack + unpack of its
  ``[id, "calc", [5]]`` frame;
* broker: one call as the broker sees it: decode the client's ``call``, the gate forwards
  it, encode it for the host; decode the host's ``result``, the gate routes it back, encode
  it for the client.

Minimum of 5 repeats.

    python -m benchmarks.micro [--calls 100000]
"""

from __future__ import annotations

import argparse
import sys
import timeit

import msgpack

from threadhost import protocol
from threadhost.gate import Gate, GateConfig, StartHost, ToClient, ToHost
from threadhost.policy import parse_policy


def codec_call_us(system: str = "threadhost", calls: int = 100_000) -> float:
    """Encode + decode of one call, in microseconds (``system``: threadhost or floor)."""
    if system == "floor":
        pack, unpack = msgpack.Packer(autoreset=True).pack, msgpack.unpackb

        def floor() -> None:
            unpack(pack([1, "calc", [5]]))

        one = floor
    else:
        encode_call, decode_body = protocol.encode_call, protocol.decode_body

        def threadhost() -> None:
            decode_body(encode_call(1, "calc", [5], {}, 10.0, None))

        one = threadhost
    return min(timeit.repeat(one, number=calls, repeat=5)) / calls * 1e6


def broker_call_us(calls: int, hosts: int = 1) -> float:
    gate = Gate(GateConfig(policy="manual", hosts=hosts), parse_policy, 0.0)
    host_ids = [a.host_id for a in gate.start(0.0) if isinstance(a, StartHost)]
    adapter = {
        "adapter": "bench",
        "default_policy": None,
        "replicable": True,
        "calls": [
            {"name": "calc", "kind": "fast"},
            {"name": "read_config", "kind": "slow", "startup": False, "policy": None,
             "deadline": None},
        ],
    }
    for host in host_ids:
        gate.host_message(0.1, host, protocol.Ready(host, 1, adapter, "fp"))
    gate.tick(0.2)
    if gate.state != "ready":
        raise RuntimeError(f"gate not ready: {gate.state}")
    call_body = protocol.encode_call(1, "calc", [5], {}, 10.0, None)
    route = (b"client",)

    def one() -> None:
        (to_host,) = gate.client_message(1.0, route, protocol.decode_body(call_body))
        assert type(to_host) is ToHost
        protocol.encode_body(to_host.message)
        reply = protocol.decode_body(protocol.encode_result(to_host.message.id, 6))
        (to_client,) = gate.host_message(1.0, to_host.host_id, reply)
        assert type(to_client) is ToClient
        protocol.encode_body(to_client.message)

    return min(timeit.repeat(one, number=calls, repeat=5)) / calls * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--hosts", type=int, default=1, help="pool size the gate routes over")
    ns = parser.parse_args(argv)
    for system in ("threadhost", "floor"):
        print(f"codec, encode + decode of a call ({system}): "
              f"{codec_call_us(system, ns.calls):.2f} us")
    us = broker_call_us(ns.calls, ns.hosts)
    print(f"broker Python per call (decode, gate, encode; both directions; "
          f"{ns.hosts} host(s)): {us:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
