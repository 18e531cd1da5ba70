"""The transport seam (threadhost/transport.py): the only module that sets socket options,
and its pure parts: endpoint safety, keys, roles, the reduced status, handshake failures."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest
import zmq

from threadhost import transport
from threadhost.errors import ProtocolError
from threadhost.protocol import HEADER, Ping, encode
from threadhost.transport import (
    CALLER_ROLE,
    OPERATOR_ROLE,
    ZAP_DOMAIN,
    ZAP_HOSTS_DOMAIN,
    KeyFileError,
    KeyRing,
    client_keys,
    is_local_endpoint,
    load_public_key,
    load_secret_key,
    new_keys,
)

PACKAGE = Path(transport.__file__).parent
_OPTION_CALLS = re.compile(r"setsockopt|\.set\(zmq\.|socket\(zmq\.|\.socket\(\s*zmq\.")


def test_no_module_but_transport_makes_or_configures_sockets() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "transport.py" and path.parent == PACKAGE:
            continue
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            if _OPTION_CALLS.search(line):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{n}: {line.strip()}")
    assert offenders == []


def test_the_grep_finds_what_it_looks_for() -> None:
    text = (PACKAGE / "transport.py").read_text("utf-8")
    assert _OPTION_CALLS.search(text)
    assert _OPTION_CALLS.search("    s = ctx.socket(zmq.DEALER)")
    assert _OPTION_CALLS.search("    s.setsockopt(zmq.LINGER, 0)")


@pytest.mark.parametrize("endpoint", [
    "tcp://127.0.0.1:6000", "tcp://127.0.0.1:*", "tcp://127.1.2.3:5", "tcp://localhost:6000",
    "tcp://[::1]:6000", "tcp://lo:6000", "ipc:///tmp/x.sock", "ipc://@abstract",
    "inproc://x", "ws://127.0.0.1:80",
])
def test_local_endpoints(endpoint: str) -> None:
    assert is_local_endpoint(endpoint)


@pytest.mark.parametrize("endpoint", [
    "tcp://*:6000", "tcp://0.0.0.0:6000", "tcp://192.168.1.5:6000", "tcp://10.0.0.1:*",
    "tcp://[::]:6000", "tcp://eth0:6000", "tcp://example.com:6000", "tcp://[2001:db8::1]:1",
    "pgm://eth0;239.192.1.1:5555", "udp://127.0.0.1:5", "nonsense", "tcp://:6000",
])
def test_endpoints_others_can_reach(endpoint: str) -> None:
    assert not is_local_endpoint(endpoint)


def test_new_keys_are_zmq_certificates_with_a_private_secret(tmp_path: Path) -> None:
    public, secret = new_keys("alice", tmp_path / "keys")
    assert public.name == "alice.key" and secret.name == "alice.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    pub, sec = zmq.auth.load_certificate(secret)
    assert sec is not None and zmq.curve_public(sec) == pub
    assert load_public_key(public) == pub == load_public_key(secret)
    assert load_public_key(pub.decode()) == pub == load_public_key(pub)
    assert load_secret_key(secret) == (pub, sec) == load_secret_key(sec.decode())
    with pytest.raises(KeyFileError, match="exists"):
        new_keys("alice", tmp_path / "keys")
    with pytest.raises(KeyFileError, match="no secret key"):
        load_secret_key(public)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_public_key(tmp_path / "missing.key")
    os.chmod(secret, 0o644)  # as zmq.auth.create_certificates leaves it
    with pytest.raises(KeyFileError, match=r"open to others.*chmod 600"):
        load_secret_key(secret)
    assert load_public_key(secret) == pub  # its public half is no secret


def test_client_keys_need_both_halves(tmp_path: Path) -> None:
    server, _ = new_keys("server", tmp_path)
    _, mine = new_keys("me", tmp_path)
    assert client_keys() is None
    keys = client_keys(server, mine)
    assert keys is not None and keys.server_public == load_public_key(server)
    with pytest.raises(KeyFileError, match="both"):
        client_keys(server, None)
    with pytest.raises(KeyFileError, match="both"):
        client_keys(None, mine)


def test_roles_from_key_directories(tmp_path: Path) -> None:
    for role in ("clients", "operators", "hosts"):
        (tmp_path / role).mkdir()
    keys = {}
    for name, role in (("alice", "clients"), ("olga", "operators"), ("h", "hosts")):
        public, _ = new_keys(name, tmp_path / "all")
        (tmp_path / role / public.name).write_bytes(public.read_bytes())
        keys[name] = load_public_key(public)
    ring = KeyRing.from_dirs(str(tmp_path / "clients"), str(tmp_path / "operators"),
                             str(tmp_path / "hosts"))
    assert ring.role(keys["alice"].decode()) == CALLER_ROLE
    assert ring.role(keys["olga"]) == OPERATOR_ROLE
    assert ring.role(keys["h"]) is None  # a host key is nobody on the front end
    assert ring.role(None) is None and ring.role("x" * 40) is None
    assert ring.allows(ZAP_DOMAIN, keys["alice"]) and ring.allows(ZAP_DOMAIN, keys["olga"])
    assert not ring.allows(ZAP_DOMAIN, keys["h"])
    assert ring.allows(ZAP_HOSTS_DOMAIN, keys["h"])
    assert not ring.allows(ZAP_HOSTS_DOMAIN, keys["alice"])
    assert not ring.allows("other", keys["olga"])
    with pytest.raises(KeyFileError, match="not a directory"):
        KeyRing.from_dirs(str(tmp_path / "nope"))


def test_what_needs_an_operator() -> None:
    assert transport.needs_operator("maintain") and transport.needs_operator("shutdown")
    for kind in ("call", "describe", "ping", "status"):
        assert not transport.needs_operator(kind)


def test_a_caller_sees_a_reduced_status() -> None:
    full = {"state": "ready", "adapter": "m:A", "fingerprint": "f", "uptime": 1.0,
            "pool_size": 1, "broker_pid": 7, "host_pids": [8], "counters": {"calls": 3},
            "hosts": [{"id": "h1"}], "failed_reason": None, "endpoint": "tcp://x:1"}
    reduced = transport.reduced_status(full)
    assert reduced == {"state": "ready", "adapter": "m:A", "fingerprint": "f", "uptime": 1.0,
                       "pool_size": 1, "reduced": True}


def test_handshake_failures_that_are_authentication_errors() -> None:
    auth = transport.auth_failure
    assert auth(transport.EV_AUTH_FAILED, 400, True)
    assert "requires CURVE" in (auth(transport.EV_PROTOCOL_FAILED,
                                      transport.MECHANISM_MISMATCH, False) or "")
    assert "does not use CURVE" in (auth(transport.EV_PROTOCOL_FAILED,
                                         transport.MECHANISM_MISMATCH, True) or "")
    assert auth(transport.EV_PROTOCOL_FAILED, 0x10000001, False) is None  # not security
    assert auth(transport.EV_CLOSED, 0, True) is None
    assert transport.read_event([b"\x01\x00"]) is None


def test_decode_frames_checks_count_and_header() -> None:
    assert transport.decode_frames(encode(Ping(id=3)), 1000) == Ping(id=3)
    with pytest.raises(ProtocolError, match="expected 2 frames"):
        transport.decode_frames([HEADER], 1000)
    with pytest.raises(ProtocolError):
        transport.decode_frames([b"XX\x01", encode(Ping(id=3))[1]], 1000)


def test_ipc_a_live_service_is_refused_and_a_stale_file_replaced(tmp_path: Path) -> None:
    path = tmp_path / "svc.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(path))
    live.listen(1)
    try:
        assert transport.ipc_in_use(str(path))
        with pytest.raises(ValueError, match="another service is listening"):
            transport.prepare_ipc(f"ipc://{path}")
    finally:
        live.close()
    assert path.exists() and not transport.ipc_in_use(str(path))  # stale now
    transport.prepare_ipc(f"ipc://{path}")
    assert not path.exists()
    nested = tmp_path / "new" / "dir" / "svc.sock"
    transport.prepare_ipc(f"ipc://{nested}")
    assert stat.S_IMODE(os.stat(nested.parent).st_mode) == 0o700


def test_an_ipc_socket_file_is_for_its_owner_only(tmp_path: Path) -> None:
    ctx = zmq.Context()
    try:
        sock = transport.front_socket(ctx, f"ipc://{tmp_path}/front.sock", 1000)
        try:
            mode = stat.S_IMODE(os.stat(tmp_path / "front.sock").st_mode)
            assert mode & 0o077 == 0, oct(mode)
        finally:
            sock.close(0)
    finally:
        ctx.term()


def test_a_curve_server_without_an_authenticator_lets_nobody_in(tmp_path: Path) -> None:
    """ZAP_ENFORCE_DOMAIN: a CURVE server whose ZAP handler is not running refuses every
    key, instead of accepting any (libzmq's default)."""
    server_pub, server_sec = zmq.curve_keypair()
    pub, sec = zmq.curve_keypair()
    ctx = zmq.Context()
    try:
        front = transport.front_socket(ctx, "tcp://127.0.0.1:*", 1000,
                                       transport.ServerKeys(server_pub, server_sec))
        client = transport.client_socket(ctx, transport.last_endpoint(front),
                                         transport.ClientKeys(server_pub, pub, sec))
        assert not client.poll(1500, zmq.POLLOUT)  # IMMEDIATE: writable once handshaken
        client.close(0)
        front.close(0)
    finally:
        ctx.term()


def test_the_guard_lets_in_exactly_the_allowed_keys() -> None:
    server_pub, server_sec = zmq.curve_keypair()
    allowed_pub, allowed_sec = zmq.curve_keypair()
    other_pub, other_sec = zmq.curve_keypair()
    ctx = zmq.Context()
    guard = transport.Guard(ctx, KeyRing(clients={allowed_pub}))
    try:
        front = transport.front_socket(ctx, "tcp://127.0.0.1:*", 1000,
                                       transport.ServerKeys(server_pub, server_sec))
        ep = transport.last_endpoint(front)
        good = transport.client_socket(ctx, ep, transport.ClientKeys(server_pub, allowed_pub,
                                                                     allowed_sec))
        bad = transport.client_socket(ctx, ep, transport.ClientKeys(server_pub, other_pub,
                                                                    other_sec))
        assert good.poll(5000, zmq.POLLOUT)
        good.send_multipart(encode(Ping(id=1)))
        assert front.poll(5000)
        frames, who = transport.recv_frames_user(front)
        assert who == allowed_pub.decode() and frames[1:] == encode(Ping(id=1))
        assert not bad.poll(1000, zmq.POLLOUT)
        for s in (good, bad, front):
            s.close(0)
    finally:
        guard.stop()
        ctx.term()
