"""A faithful stand-in for ``mylib``, the licensed thread-hostile library of the seed story.

Five functions, as the vendor ships them::

    init()        initialise; the calling thread becomes the library's thread
    readConfig()  read and apply the configuration; takes up to 30 s
    calc(x)       x + offset, per the configuration
    state()       what is in force: configured yet?, from which file, which keys it set
    uninit()      uninitialise

Hostile like the real thing: calling any of them from a thread other than the one that
called ``init()``, calling ``readConfig``/``calc``/``state``/``uninit`` before ``init`` or after
``uninit``, calling ``init`` twice, or passing ``calc`` something that is not an ``int``
*kills the process* with :func:`os.abort` (SIGABRT) after one line on stderr naming the
violation. No Python exception is raised: nothing can catch it, just as with the C library.

Configuration
-------------
A TOML file named by the environment variable ``MYLIB_CONFIG`` (built-in defaults when the
variable is unset or empty)::

    offset = 1              # calc(x) returns x + offset
    read_min_seconds = 0    # readConfig sleeps uniformly between these two ...
    read_max_seconds = 30   # ... before the new values take effect
    abort_in_read = false   # true: readConfig kills the process after its sleep
                            # (simulates the library crashing mid-reload)

``readConfig`` reads and checks the file when it *starts* (so the new file's
``read_*_seconds`` decide how long this very reload takes, and a bad file fails at once),
sleeps, then applies the values. A file written during the sleep is picked up by the
next ``readConfig``. A missing file raises ``FileNotFoundError``; invalid TOML, unknown
keys or wrong value types raise ``ValueError``; either way the old configuration stays in
force (a failed reload keeps the old config). ``calc`` before the first ``readConfig`` uses
the defaults (offset 1).

Like many vendor libraries, mylib checks types, not meaning: a key left out of the file
silently takes its default, and any integer ``offset`` is applied, negative or huge.
``state()`` tells what is in force — whether a ``readConfig`` completed since ``init``, the
file it came from and the keys that file set — so that a caller can judge it (the adapter's
``verify`` does, see ``examples/mylib_adapter.py``).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, fields, replace
from typing import Any, NoReturn

__all__ = ["Config", "State", "calc", "init", "readConfig", "state", "uninit"]

CONFIG_ENV = "MYLIB_CONFIG"


@dataclass(frozen=True)
class Config:
    """The library's configuration; the defaults apply until a ``readConfig`` succeeds."""

    offset: int = 1
    read_min_seconds: float = 0.0
    read_max_seconds: float = 30.0
    abort_in_read: bool = False


@dataclass(frozen=True)
class State:
    """What :func:`state` reports: the configuration in force and where it came from."""

    configured: bool  # a readConfig() completed since init()
    source: str | None  # the file it was read from; None: built-in defaults (no $MYLIB_CONFIG)
    keys: frozenset[str]  # the keys that file set; the others took their defaults
    config: Config


_owner: int | None = None  # ident of the thread that called init(); None when not initialised
_was_uninitialised = False
_config = Config()
_state = State(False, None, frozenset(), _config)


def _die(message: str) -> NoReturn:
    """What the C library does on misuse: write one line and take the process down."""
    sys.stderr.write(f"mylib: fatal: {message}\n")
    sys.stderr.flush()
    os.abort()


def _thread_name() -> str:
    return f"{threading.current_thread().name} ({threading.get_ident()})"


def _enter(function: str) -> None:
    """Abort unless the library is initialised and this is the thread that initialised it."""
    if _owner is None:
        when = "after uninit()" if _was_uninitialised else "before init()"
        _die(f"{function}() called {when}")
    if threading.get_ident() != _owner:
        _die(f"{function}() called from thread {_thread_name()}, but init() ran on thread {_owner}")


def _number(data: dict[str, Any], key: str, default: float) -> float:
    value = data.get(key, default)
    if type(value) not in (int, float) or value < 0:
        raise ValueError(f"{key} must be a non-negative number, got {value!r}")
    return float(value)


def _load(path: str) -> tuple[Config, frozenset[str]]:
    """Parse and check the configuration file: the configuration and the keys the file set.
    Raises ValueError/OSError and changes nothing when the file is unreadable or mistyped."""
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    unknown = sorted(set(data) - {field.name for field in fields(Config)})
    if unknown:
        raise ValueError(f"{path}: unknown keys: {', '.join(unknown)}")
    defaults = Config()
    offset = data.get("offset", defaults.offset)
    if type(offset) is not int:
        raise ValueError(f"{path}: offset must be an integer, got {offset!r}")
    low = _number(data, "read_min_seconds", defaults.read_min_seconds)
    high = _number(data, "read_max_seconds", defaults.read_max_seconds)
    if low > high:
        raise ValueError(f"{path}: read_min_seconds ({low}) exceeds read_max_seconds ({high})")
    abort_in_read = data.get("abort_in_read", defaults.abort_in_read)
    if type(abort_in_read) is not bool:
        raise ValueError(f"{path}: abort_in_read must be true or false, got {abort_in_read!r}")
    config = replace(
        defaults,
        offset=offset,
        read_min_seconds=low,
        read_max_seconds=high,
        abort_in_read=abort_in_read,
    )
    return config, frozenset(data)


def init() -> None:
    """Initialise the library; the calling thread becomes the only one allowed to use it.

    The configuration starts again from the defaults.
    """
    global _owner, _config, _state
    if _owner is not None:
        if threading.get_ident() != _owner:
            _die(
                f"init() called from thread {_thread_name()}, "
                f"but the library is initialised on thread {_owner}"
            )
        _die("init() called twice without uninit()")
    _owner = threading.get_ident()
    _config = Config()
    _state = State(False, None, frozenset(), _config)


def readConfig() -> None:
    """Read ``$MYLIB_CONFIG`` and apply it after a random delay (up to 30 s by default)."""
    global _config, _state
    _enter("readConfig")
    path = os.environ.get(CONFIG_ENV) or None
    new, keys = (Config(), frozenset[str]()) if path is None else _load(path)
    time.sleep(random.uniform(new.read_min_seconds, new.read_max_seconds))
    if new.abort_in_read:
        _die("readConfig() crashed (abort_in_read = true)")
    _config = new
    _state = State(True, path, keys, new)


def calc(x: int) -> int:
    """Return ``x + offset``; anything but an ``int`` crashes the library."""
    _enter("calc")
    if type(x) is not int:
        _die(f"calc() got {type(x).__name__} {x!r}, expected int")
    return x + _config.offset


def state() -> State:
    """What is in force: whether a ``readConfig`` completed since ``init``, the file it read
    and the keys that file set, and the configuration itself."""
    _enter("state")
    return _state


def uninit() -> None:
    """Uninitialise; afterwards only ``init`` may be called."""
    global _owner, _was_uninitialised
    _enter("uninit")
    _owner = None
    _was_uninitialised = True
