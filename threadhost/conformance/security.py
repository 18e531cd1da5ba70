"""The broker role's security checks (docs/protocol.md §13): run when the kit is given keys.

``threadhost conformance ENDPOINT --server-key broker.key --secret-key op.key_secret
--caller-key alice.key_secret``: the kit's clients use ``--secret-key`` (an operator key
lets every other check run), ``--caller-key`` is a key of the service's ``--clients``
directory. Without them these checks are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import zmq

from threadhost import transport
from threadhost.conformance.broker import BrokerSession, check
from threadhost.conformance.core import CheckFailed, CheckSkipped, describe_msg
from threadhost.protocol import (
    ErrorCode,
    ErrorReply,
    Maintain,
    Ping,
    Pong,
    Shutdown,
    Status,
    StatusReply,
)

__all__ = ["KitKeys", "kit_keys", "use_keys"]


@dataclass(frozen=True)
class KitKeys:
    """The keys the kit was given: the broker's public key, the kit's own client keys (an
    operator's, best), and a caller's (a key of the ``--clients`` directory) or None."""

    server_public: bytes
    client: transport.ClientKeys
    caller: transport.ClientKeys | None = None


def kit_keys(server_key: object, secret_key: object, caller_key: object = None
             ) -> KitKeys | None:
    """KitKeys from key files (or keys), or None without ``server_key``/``secret_key``."""
    client = transport.client_keys(server_key, secret_key)
    if client is None:
        if caller_key is not None:
            raise ValueError("--caller-key needs --server-key and --secret-key")
        return None
    caller = transport.client_keys(server_key, caller_key) if caller_key is not None else None
    return KitKeys(client.server_public, client, caller)


def use_keys(s: BrokerSession, keys: KitKeys | None) -> None:
    """Make the session's clients use ``keys`` (the security checks read them too)."""
    s.kit_keys = keys  # type: ignore[attr-defined]
    if keys is not None:
        s.wire.keys[s.endpoint] = keys.client


def _keys(s: BrokerSession) -> KitKeys:
    keys = getattr(s, "kit_keys", None)
    if not isinstance(keys, KitKeys):
        raise CheckSkipped("needs --server-key and --secret-key (a CURVE broker)")
    return keys


@check("broker.curve-unknown-key", "R60",
       "a CURVE front end refuses an unknown key and a client without CURVE")
def _unknown_key(s: BrokerSession) -> str:
    keys = _keys(s)
    public, secret = zmq.curve_keypair()  # a fresh key: in no directory of the broker
    stranger = transport.ClientKeys(keys.server_public, public, secret)
    # both try at once; each gets the whole timeout to (not) complete its handshake
    peers = (
        ("an unknown key", s.scoped(s.wire.dealer(s.endpoint, "stranger", keys=stranger))),
        ("no CURVE", s.scoped(s.wire.dealer(s.endpoint, "plain", secure=False))),
    )
    got_in: list[str] = []

    def one_got_in() -> bool:
        got_in.extend(label for label, peer in peers if peer.connected(0))
        return bool(got_in)

    s.wait(one_got_in, s.timeout)
    if got_in:
        raise CheckFailed(f"a client with {got_in[0]} completed the handshake: the broker "
                          "must refuse keys it does not know (R60)")
    # and the kit's own key does get in (else the options are wrong, not the broker)
    reply = s.ask(Ping(id=58))
    if not isinstance(reply, Pong):
        raise CheckFailed(f"ping with the kit's key was answered with {describe_msg(reply)}")
    return f"no handshake within {s.timeout:g}s for an unknown key or NULL security"


@check("broker.caller-role", "R61",
       "a caller key gets permission_denied for maintain and shutdown, a reduced status")
def _caller_role(s: BrokerSession) -> str:
    keys = _keys(s)
    if keys.caller is None:
        raise CheckSkipped("needs --caller-key (a key of the broker's --clients directory)")
    caller = s.scoped(s.wire.dealer(s.endpoint, "caller", keys=keys.caller))
    if not caller.connected(s.left(s.timeout)):
        raise CheckFailed("the caller key did not complete the handshake: is it in the "
                          "broker's --clients directory?")
    pong = s.ask(Ping(id=591), caller)
    if not isinstance(pong, Pong):
        raise CheckFailed(f"a caller's ping was answered with {describe_msg(pong)}")
    for msg in (Maintain(id=592), Maintain(id=593, method="reload")):
        reply = s.ask(msg, caller)
        if not (isinstance(reply, ErrorReply) and reply.code is ErrorCode.PERMISSION_DENIED
                and reply.id == msg.id):
            raise CheckFailed(f"a caller's maintain was answered with {describe_msg(reply)}, "
                              "expected error permission_denied (R61)")
    refused = s.ask(Shutdown(reason="conformance"), caller)
    if not (isinstance(refused, ErrorReply)
            and refused.code is ErrorCode.PERMISSION_DENIED):
        raise CheckFailed(f"a caller's shutdown was answered with {describe_msg(refused)}, "
                          "expected error permission_denied (R61)")
    status = s.ask(Status(id=594), caller)
    if not isinstance(status, StatusReply):
        raise CheckFailed(f"a caller's status was answered with {describe_msg(status)}")
    leaked = sorted(set(status.status) - {*transport.CALLER_STATUS_KEYS, "reduced"})
    if leaked:
        raise CheckFailed(f"a caller's status shows {', '.join(leaked)}: only "
                          f"{', '.join(transport.CALLER_STATUS_KEYS)} (R61)")
    return "maintain and shutdown refused, status reduced, ping answered"
