"""The transport seam: every ZeroMQ socket of threadhost is made, configured and read here.

The broker, the hosts, the clients (sync and asyncio), the conformance kit and the stress
tools create their sockets through the factories below; no other module sets a socket
option (``tests/test_transport.py`` greps for it). One declaration of each fact:

* the options of each kind of socket (linger, high-water marks, reconnect intervals,
  ``IMMEDIATE``, ``ROUTER_MANDATORY``, ``MAXMSGSIZE``, routing ids);
* security: CurveZMQ (``CURVE_SERVER``, keys, the ZAP domains) and the keys' files;
* reading a whole message (the ``frame.more`` loop) and checking and decoding its
  (header, body) frames with the codec, imported in one place (``_codec`` below).

Security (docs/security.md, docs/protocol.md §13)
-------------------------------------------------
Keys are ``zmq.auth`` certificates: ``NAME.key`` (public) and ``NAME.key_secret`` (public
and secret; mode 0600). A server (the broker's front end, and its back end in attach mode)
with a secret key is a CURVE server whose ZAP domain is :data:`ZAP_DOMAIN` (front) or
:data:`ZAP_HOSTS_DOMAIN` (back); pyzmq's authenticator (:class:`Guard`, a
``zmq.auth.thread.ThreadAuthenticator``) accepts a client key only if it is in the allowed
directories of that domain. ``ZAP_ENFORCE_DOMAIN`` is set on CURVE servers: with no
authenticator running, libzmq refuses every client instead of accepting any key. The
ZAP user id of a connection is the client's z85 public key; the broker reads it from a
message (``Frame.get("User-Id")``) and maps it to a role (:meth:`KeyRing.role`).

Without keys every socket uses the NULL mechanism: whoever can reach an endpoint is
trusted. :func:`is_local_endpoint` tells the endpoints only this machine can reach
(loopback TCP, ``ipc://``, ``inproc://``) from the rest, which need CURVE (or
``--insecure``).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket as _socket
import stat
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar

import zmq

from threadhost.errors import AuthenticationError, ThreadhostError

# The codec, imported in ONE place (the codec module may be swapped at merge time).
from threadhost.protocol import HEADER, check_header, decode_body, protocol_error

__all__ = [
    "CALLER_ROLE",
    "HOST_ROLE",
    "OPERATOR_ROLE",
    "ZAP_DOMAIN",
    "ZAP_HOSTS_DOMAIN",
    "ClientKeys",
    "Guard",
    "KeyFileError",
    "KeyRing",
    "ServerKeys",
    "client_keys",
    "decode_frames",
    "http_listener",
    "is_local_endpoint",
    "load_public_key",
    "load_secret_key",
    "new_keys",
    "recv_frames",
]

_S = TypeVar("_S", bound="zmq.Socket[Any]")

# plain ints: pyzmq's send_multipart/recv_multipart do enum arithmetic on every frame
NOBLOCK: Final = int(zmq.NOBLOCK)
SNDMORE: Final = int(zmq.SNDMORE)
MORE_NOBLOCK: Final = int(zmq.SNDMORE | zmq.NOBLOCK)
POLLIN: Final = int(zmq.POLLIN)
POLLOUT: Final = int(zmq.POLLOUT)
EVENTS: Final = int(zmq.EVENTS)
_RCVTIMEO: Final = int(zmq.RCVTIMEO)
#: ``send_frame(sock, data, flags)``: one frame sent by pyzmq's compiled ``send``, without
#: the Python wrapper of ``zmq.Socket.send`` (its draft-socket ``routing_id``/``group``
#: arguments cost ~2 300 instructions a frame, more than libzmq's send of a small frame).
#: Same behaviour as ``sock.send(data, flags)`` on a plain or shadow socket (an asyncio
#: socket's own ``send`` returns a Future; this one does not wait for it: NOBLOCK only).
send_frame: Final = zmq.backend.Socket.send

#: ZAP domain of the broker's front end (clients and operators).
ZAP_DOMAIN: Final = "threadhost"
#: ZAP domain of the broker's back end in attach mode (hosts).
ZAP_HOSTS_DOMAIN: Final = "threadhost-hosts"

#: a host spawned by a broker reads the run's secret from stdin when given this flag
PROOF_FLAG: Final = "--proof-stdin"

CALLER_ROLE: Final = "client"
OPERATOR_ROLE: Final = "operator"
HOST_ROLE: Final = "host"

# client sockets
_RECONNECT_IVL_MS: Final = 100
_RECONNECT_IVL_MAX_MS: Final = 1000
#: a CURVE handshake that does not complete in this long fails (libzmq's default: 30 s)
_HANDSHAKE_IVL_MS: Final = 5000
# the broker's front end
_FRONT_SNDHWM: Final = 10_000
# a host's heartbeat socket: beats are not worth queueing
_HEARTBEAT_SNDHWM: Final = 10
# a host's call socket: RCVTIMEO so that the library thread sees a stop request
_HOST_RCVTIMEO_MS: Final = 200


# --------------------------------------------------------------------------- keys


class KeyFileError(ThreadhostError):
    """A key file or key directory cannot be used; the message is one line."""

    code = "keys"


def _z85_key(value: str | bytes) -> bytes | None:
    """``value`` as a 40-character z85 key, or None if it is not one."""
    raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    raw = raw.strip()
    if len(raw) != 40:
        return None
    from zmq.utils import z85

    try:
        z85.decode(raw)
    except (ValueError, KeyError, struct.error):
        return None
    return raw


def _read_cert(path: Path) -> tuple[bytes, bytes | None]:
    import zmq.auth  # only with keys: the broker without them stays lean
    try:
        public, secret = zmq.auth.load_certificate(path)
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a key file: {exc}") from None
    if public is None or len(public) != 40:  # pragma: no cover - zmq.auth checks
        raise KeyFileError(f"{path} holds no public key")
    return public, secret


def load_public_key(value: str | bytes | os.PathLike[str]) -> bytes:
    """A public key (z85): the key itself (40 z85 characters, str or bytes) or the path of
    a certificate file (``NAME.key`` or ``NAME.key_secret``)."""
    if not isinstance(value, os.PathLike):
        key = _z85_key(value)
        if key is not None:
            return key
    public, _ = _read_cert(Path(os.fsdecode(value)))
    return public


def load_secret_key(value: str | bytes | os.PathLike[str]) -> tuple[bytes, bytes]:
    """``(public, secret)`` (z85) from a ``NAME.key_secret`` file (refused when others may
    read it) or a secret key itself (its public key is derived)."""
    if not isinstance(value, os.PathLike):
        key = _z85_key(value)
        if key is not None:
            return zmq.curve_public(key), key
    path = Path(os.fsdecode(value))
    public, secret = _read_cert(path)
    if secret is None:
        raise KeyFileError(f"{path} holds no secret key (give NAME.key_secret, not NAME.key)")
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:  # as ssh does: a secret others may read is not a secret
        raise KeyFileError(f"secret key file {path} is open to others (mode {mode:o}); "
                           f"chmod 600 {path}")
    return public, secret


def new_keys(name: str, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write a new key pair ``DIR/NAME.key`` and ``DIR/NAME.key_secret`` (mode 0600) in the
    ``zmq.auth`` certificate format; refuses to overwrite."""
    import zmq.auth  # only with keys: the broker without them stays lean

    if not name or "/" in name or name.startswith("."):
        raise KeyFileError(f"bad key name {name!r}: a plain file name, e.g. 'broker'")
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    public = folder / f"{name}.key"
    secret = folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise KeyFileError(f"{path} exists; remove it or choose another name")
    old = os.umask(0o077)  # the secret file is never readable by others, even briefly
    try:
        pub_path, sec_path = zmq.auth.create_certificates(folder, name)
    finally:
        os.umask(old)
    os.chmod(sec_path, 0o600)
    os.chmod(pub_path, 0o644)
    return Path(pub_path), Path(sec_path)


def _public_keys(directory: str | os.PathLike[str]) -> set[bytes]:
    import zmq.auth  # only with keys: the broker without them stays lean
    folder = Path(directory)
    if not folder.is_dir():
        raise KeyFileError(f"key directory {folder} is not a directory")
    try:
        certs = zmq.auth.load_certificates(folder)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read the keys in {folder}: {exc}") from None
    return {bytes(k) for k in certs}


@dataclass(frozen=True)
class ClientKeys:
    """A CURVE client's keys: the server's public key and our own pair (z85)."""

    server_public: bytes
    public: bytes
    secret: bytes


@dataclass(frozen=True)
class ServerKeys:
    """A CURVE server's own key pair (z85)."""

    public: bytes
    secret: bytes


def client_keys(server_key: Any = None, secret_key: Any = None) -> ClientKeys | None:
    """Client keys from ``server_key`` (the server's public key, or a file holding it) and
    ``secret_key`` (our ``NAME.key_secret`` file, or our secret key); None when neither is
    given. Giving one without the other is an error."""
    if server_key is None and secret_key is None:
        return None
    if server_key is None or secret_key is None:
        raise KeyFileError("CURVE needs both server_key (the service's public key) and "
                        "secret_key (your NAME.key_secret)")
    public, secret = load_secret_key(secret_key)
    return ClientKeys(load_public_key(server_key), public, secret)


def server_keys(secret_key: Any) -> ServerKeys:
    public, secret = load_secret_key(secret_key)
    return ServerKeys(public, secret)


@dataclass
class KeyRing:
    """Who may connect: public keys (z85) per role. ``clients`` may call, describe, ping
    and read a reduced status; ``operators`` may do that and also maintain, shut down and
    read the full status; ``hosts`` may attach to the back end."""

    clients: set[bytes] = field(default_factory=set)
    operators: set[bytes] = field(default_factory=set)
    hosts: set[bytes] = field(default_factory=set)

    @classmethod
    def from_dirs(cls, clients: str | None = None, operators: str | None = None,
                  hosts: str | None = None) -> KeyRing:
        return cls(_public_keys(clients) if clients else set(),
                   _public_keys(operators) if operators else set(),
                   _public_keys(hosts) if hosts else set())

    def role(self, user_id: str | bytes | None) -> str | None:
        """The front-end role of a connection's ZAP user id (its z85 public key):
        ``operator``, ``client`` or None (unknown)."""
        if user_id is None:
            return None
        key = user_id.encode() if isinstance(user_id, str) else user_id
        if key in self.operators:
            return OPERATOR_ROLE
        if key in self.clients:
            return CALLER_ROLE
        return None

    def allows(self, domain: str, key: bytes) -> bool:
        """The ZAP decision: may ``key`` connect to a socket of ``domain``?"""
        if domain == ZAP_HOSTS_DOMAIN:
            return key in self.hosts
        if domain == ZAP_DOMAIN:
            return key in self.operators or key in self.clients
        return False


#: what each request kind needs on a CURVE front end (docs/protocol.md §13)
OPERATOR_KINDS: Final = frozenset({"maintain", "shutdown"})


def needs_operator(kind: str) -> bool:
    """Whether a front-end request of ``kind`` needs the operator role (``status`` is
    answered to a caller too, reduced: see :func:`reduced_status`)."""
    return kind in OPERATOR_KINDS


#: the status entries a caller (client key) may read; operators read everything
CALLER_STATUS_KEYS: Final = ("state", "adapter", "fingerprint", "uptime", "pool_size")


def reduced_status(status: dict[str, Any]) -> dict[str, Any]:
    """The status as a caller sees it: whether and what the service serves, nothing about
    processes, counters, maintenance or failures (docs/security.md)."""
    out: dict[str, Any] = {k: status[k] for k in CALLER_STATUS_KEYS if k in status}
    out["reduced"] = True
    return out


class _Provider:
    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    def callback(self, domain: str, key: bytes) -> bool:
        return self.ring.allows(domain, bytes(key))


class Guard:
    """pyzmq's ZAP authenticator (a thread) for a broker's CURVE sockets."""

    def __init__(self, ctx: zmq.Context[Any], ring: KeyRing) -> None:
        from zmq.auth.thread import ThreadAuthenticator

        self.ring = ring
        self._auth = ThreadAuthenticator(ctx, log=_quiet_auth_log())
        self._auth.start()
        provider = _Provider(ring)
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=provider)
        self._auth.configure_curve_callback(ZAP_HOSTS_DOMAIN, credentials_provider=provider)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._auth.stop()


def _quiet_auth_log() -> Any:
    import logging

    return logging.getLogger("threadhost.auth")


def _curve_server(sock: zmq.Socket[Any], keys: ServerKeys, domain: str) -> None:
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt_string(zmq.ZAP_DOMAIN, domain)
    sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)  # no authenticator: nobody gets in


def _curve_client(sock: zmq.Socket[Any], keys: ClientKeys) -> None:
    sock.setsockopt(zmq.CURVE_SERVERKEY, keys.server_public)
    sock.setsockopt(zmq.CURVE_PUBLICKEY, keys.public)
    sock.setsockopt(zmq.CURVE_SECRETKEY, keys.secret)
    sock.setsockopt(zmq.HANDSHAKE_IVL, _HANDSHAKE_IVL_MS)


def user_id(frame: zmq.Frame) -> str | None:
    """The ZAP user id of the connection a received frame came from (None: no ZAP)."""
    try:
        value = frame.get("User-Id")
    except zmq.ZMQError:
        return None
    return value if isinstance(value, str) and value else None


# --------------------------------------------------------------------------- endpoints

_LOCAL_NAMES: Final = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                                 "ip6-loopback", "lo"})


def is_local_endpoint(endpoint: str) -> bool:
    """Whether only this machine can reach ``endpoint`` once bound: ``ipc://``,
    ``inproc://``, or TCP/WebSocket on a loopback address (``127.0.0.0/8``, ``::1``,
    ``localhost``, the ``lo`` interface). ``*``, ``0.0.0.0``, other addresses, host and
    interface names are not (a name is never resolved: a name is not local)."""
    scheme, sep, address = endpoint.partition("://")
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme not in ("tcp", "ws", "wss"):
        return False  # multicast, udp...: reach beyond the machine
    host = address.split("/", 1)[0]
    host, _, _ = host.rpartition(":")
    if ";" in host:  # tcp://SOURCE;HOST:PORT (connect only): judge the destination
        host = host.rpartition(";")[2]
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ipc_path(endpoint: str) -> str | None:
    scheme, sep, address = endpoint.partition("://")
    return address if sep and scheme == "ipc" and not address.startswith("@") else None


def ipc_in_use(path: str) -> bool:
    """Whether a live process accepts connections on the unix socket ``path`` (a file
    left by a crashed service refuses them: it is stale)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISSOCK(st.st_mode):
        return False
    probe = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError as exc:
        return exc.errno not in (errno.ECONNREFUSED, errno.ENOENT)
    finally:
        probe.close()
    return True


def prepare_ipc(endpoint: str) -> None:
    """Before binding ``ipc://PATH``: refuse (ValueError) when a live service answers on
    PATH; remove a stale socket file; create a missing directory 0700."""
    path = ipc_path(endpoint)
    if path is None:
        return
    if ipc_in_use(path):
        raise ValueError(f"another service is listening on {endpoint}")
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)  # stale: its process is gone
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, mode=0o700, exist_ok=True)


def _bind(sock: zmq.Socket[Any], endpoint: str) -> None:
    if ipc_path(endpoint) is not None:
        old = os.umask(0o077)  # the socket file: only this user may connect (0600)
        try:
            sock.bind(endpoint)
        finally:
            os.umask(old)
    else:
        sock.bind(endpoint)


# --------------------------------------------------------------------------- sockets


def front_socket(ctx: zmq.Context[Any], endpoint: str, max_size: int,
                 keys: ServerKeys | None = None) -> zmq.Socket[bytes]:
    """The broker's front end (ROUTER) bound to ``endpoint``; clients connect to it."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, _FRONT_SNDHWM)
        # a frame over twice the protocol limit is not even buffered: libzmq disconnects the
        # sender (between the limit and twice it, the sender gets a typed protocol error)
        sock.setsockopt(zmq.MAXMSGSIZE, 2 * max_size + 1024)
        if keys is not None:
            _curve_server(sock, keys, ZAP_DOMAIN)
        _bind(sock, endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def back_socket(ctx: zmq.Context[Any], endpoint: str,
                keys: ServerKeys | None = None) -> zmq.Socket[bytes]:
    """The broker's back end (ROUTER) bound to ``endpoint``; hosts connect to it."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if keys is not None:
            _curve_server(sock, keys, ZAP_HOSTS_DOMAIN)
        _bind(sock, endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def http_listener(host: str, port: int) -> _socket.socket:
    """A bound TCP socket for an HTTP server beside the service (the dashboard), made here
    like every other socket: bound by the caller's process, so a port in use is an
    ``OSError`` the command reports in one line rather than inside the web server."""
    sock = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET)
    try:
        sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def last_endpoint(sock: zmq.Socket[Any]) -> str:
    return sock.getsockopt_string(zmq.LAST_ENDPOINT)


def client_socket(ctx: zmq.Context[_S], endpoint: str,
                  keys: ClientKeys | None = None, *, connect: bool = True) -> _S:
    """A client's DEALER connected to ``endpoint``: ``IMMEDIATE`` (nothing is queued for a
    broker that is not connected), ``LINGER=0``, quick reconnects. ``connect=False``: the
    caller connects it (after attaching a :func:`monitor`, to see the first attempt)."""
    sock = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)
        sock.setsockopt(zmq.RECONNECT_IVL, _RECONNECT_IVL_MS)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, _RECONNECT_IVL_MAX_MS)
        if keys is not None:
            _curve_client(sock, keys)
        if connect:
            sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def host_socket(ctx: zmq.Context[Any], endpoint: str, routing_id: str, *, heartbeat: bool,
                keys: ClientKeys | None = None) -> zmq.Socket[bytes]:
    """A host's DEALER to the broker's back end: the call socket (``RCVTIMEO`` and
    ``SNDTIMEO`` so the library thread sees a stop) or the heartbeat socket (``LINGER=0``, a
    small queue)."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.ROUTING_ID, routing_id.encode())
        if heartbeat:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, _HEARTBEAT_SNDHWM)
        else:
            sock.setsockopt(zmq.RCVTIMEO, _HOST_RCVTIMEO_MS)
            # a send with no connected broker (gone, or a refused CURVE handshake) would
            # block for ever: it gives up after this long and the host tries again unless
            # it is stopping (a SIGTERM is never stuck behind a send)
            sock.setsockopt(zmq.SNDTIMEO, _HOST_RCVTIMEO_MS)
        if keys is not None:
            _curve_client(sock, keys)
        sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def probe_dealer(ctx: zmq.Context[Any], endpoint: str, routing_id: str | None = None, *,
                 immediate: bool = True, sndhwm: int | None = None,
                 keys: ClientKeys | None = None) -> zmq.Socket[bytes]:
    """A test peer's DEALER (the conformance kit, the stress tools)."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.DEALER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        if immediate:
            sock.setsockopt(zmq.IMMEDIATE, 1)
            sock.setsockopt(zmq.RECONNECT_IVL, _RECONNECT_IVL_MS)
        if sndhwm is not None:
            sock.setsockopt(zmq.SNDHWM, sndhwm)
        if routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, routing_id.encode())
        if keys is not None:
            _curve_client(sock, keys)
        sock.connect(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def probe_router(ctx: zmq.Context[Any], endpoint: str) -> zmq.Socket[bytes]:
    """A test peer's ROUTER bound to ``endpoint`` (the conformance kit's fake broker)."""
    sock: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    try:
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.bind(endpoint)
    except BaseException:
        sock.close(linger=0)
        raise
    return sock


def set_recv_timeout(sock: zmq.Socket[Any], ms: int) -> None:
    """``RCVTIMEO`` of a client socket (the sync client's bounded blocking receive)."""
    sock.setsockopt(_RCVTIMEO, ms)


# --------------------------------------------------------------------------- monitors

HANDSHAKE_FAILED: Final = frozenset(
    int(getattr(zmq, name)) for name in (
        "EVENT_HANDSHAKE_FAILED_NO_DETAIL", "EVENT_HANDSHAKE_FAILED_PROTOCOL",
        "EVENT_HANDSHAKE_FAILED_AUTH",
    ) if hasattr(zmq, name)
)
EV_AUTH_FAILED: Final = int(getattr(zmq, "EVENT_HANDSHAKE_FAILED_AUTH", 0x4000))
EV_PROTOCOL_FAILED: Final = int(getattr(zmq, "EVENT_HANDSHAKE_FAILED_PROTOCOL", 0x2000))
EV_NO_DETAIL: Final = int(getattr(zmq, "EVENT_HANDSHAKE_FAILED_NO_DETAIL", 0x800))
EV_CLOSED: Final = int(zmq.EVENT_CLOSED)
EV_DISCONNECTED: Final = int(zmq.EVENT_DISCONNECTED)
EV_SUCCEEDED: Final = int(getattr(zmq, "EVENT_HANDSHAKE_SUCCEEDED", 0x1000))
#: ZMTP: the peers use different security mechanisms (NULL vs CURVE)
MECHANISM_MISMATCH: Final = int(getattr(zmq, "PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH",
                                        0x11000003))
_CRYPTO_ERRORS: Final = frozenset(
    int(getattr(zmq, name)) for name in dir(zmq)
    if name.startswith("PROTOCOL_ERROR_ZMTP_") and (
        "CRYPTOGRAPHIC" in name or "KEY_EXCHANGE" in name or "MECHANISM" in name)
)
WATCHED: Final = EV_CLOSED | EV_DISCONNECTED | EV_SUCCEEDED | sum(HANDSHAKE_FAILED)


def monitor(sock: _S) -> _S:
    """A monitor (PAIR) socket of ``sock``'s connection events (see :func:`read_event`)."""
    return sock.get_monitor_socket(WATCHED)


def read_event(frames: list[bytes]) -> tuple[int, int] | None:
    """``(event, value)`` of a monitor message, or None."""
    if not frames or len(frames[0]) < 6:
        return None
    event, value = struct.unpack("=HI", frames[0][:6])
    return int(event), int(value)


def auth_failure(event: int, value: int, secure: bool) -> str | None:
    """Why a connection event means the handshake was refused for security reasons (the
    key was not accepted, or one side uses CURVE and the other not), else None."""
    if event == EV_AUTH_FAILED:
        return "the service refused this client's key (unknown key, or no permission)"
    if event == EV_PROTOCOL_FAILED:
        if value == MECHANISM_MISMATCH:
            if secure:
                return "the service does not use CURVE (drop --server-key/--secret-key)"
            return ("the service requires CURVE keys: give server_key and secret_key "
                    "(--server-key/--secret-key)")
        if secure and value in _CRYPTO_ERRORS:
            return "the CURVE handshake failed (wrong server key?)"
    return None


def authentication_error(what: str, endpoint: str, why: str) -> AuthenticationError:
    return AuthenticationError(f"{what}: {endpoint}: handshake failed: {why}; the call was "
                               "not sent")


# --------------------------------------------------------------------------- frames


def _recv_whole(sock: zmq.Socket[Any], flags: int) -> tuple[list[bytes], zmq.Frame]:
    """The one ``frame.more`` loop: a whole message's frames, and its last frame (which
    carries the connection's metadata). Frames come as ``zmq.Frame``: their ``more`` flag
    is read from the message itself, where ``getsockopt(RCVMORE)`` costs ~2 µs a frame."""
    recv = sock.recv
    frame = recv(flags, copy=False)
    frames = [frame.bytes]
    while frame.more:  # the rest of a multipart message is already here
        frame = recv(flags, copy=False)
        frames.append(frame.bytes)
    return frames, frame


def recv_frames(sock: zmq.Socket[Any], flags: int = 0) -> list[bytes]:
    """One whole message from ``sock`` (``zmq.Again`` if none within its timeout / with
    NOBLOCK)."""
    return _recv_whole(sock, flags)[0]


def recv_frames_user(sock: zmq.Socket[Any], flags: int = 0) -> tuple[list[bytes], str | None]:
    """As :func:`recv_frames`, with the ZAP user id of the sender's connection."""
    frames, last = _recv_whole(sock, flags)
    return frames, user_id(last)  # a frame the peer sent (a ROUTER's id frame is not)


def decode_frames(frames: list[bytes], max_size: int) -> Any:
    """The message of (header, body) ``frames``; ProtocolError for anything else."""
    if len(frames) != 2:
        raise protocol_error(f"expected 2 frames (header, body), got {len(frames)}")
    if frames[0] != HEADER:
        check_header(frames[0])
    return decode_body(frames[1], max_size)


def send_routed(sock: zmq.Socket[Any], route: Iterable[bytes], body: bytes) -> None:
    """Send ``route`` + (header, ``body``) without blocking; a refused message fails on its
    first frame, so nothing is sent (``zmq.ZMQError``: peer gone or its queue full)."""
    send = send_frame
    for part in route:
        send(sock, part, MORE_NOBLOCK)
    send(sock, HEADER, MORE_NOBLOCK)
    send(sock, body, NOBLOCK)


def send_pair(sock: zmq.Socket[Any], frames: list[bytes]) -> None:
    """Send (header, body): two plain sends with int flags (send_multipart costs pyzmq enum
    arithmetic per frame)."""
    send_frame(sock, frames[0], SNDMORE)
    send_frame(sock, frames[1])

