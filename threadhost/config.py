"""``threadhost serve --config FILE``: a small TOML file, validated by pydantic.

Example::

    adapter = "mylib_adapter:MyLibAdapter"
    endpoint = "tcp://127.0.0.1:5555"
    policy = "idle=10s | stale=5m"
    fast_call_limit = "30s"
    log_level = "info"
    hosts = 2                       # a pool of host processes (the adapter must be replicable)
    max_maintaining = 1             # hosts running a slow call at once during a rollout
    route_away_after = "2s"         # a host whose fast call runs longer gets no new calls
    maintain_budget = 0.5           # maintain requests keep it busy at most half the time
    secret_key = "/etc/threadhost/broker.key_secret"   # CURVE (docs/security.md)
    clients = "/etc/threadhost/clients"            # public keys allowed to call
    operators = "/etc/threadhost/operators"        # ... and to maintain, read full status

    [policies]                      # per slow-call overrides
    readConfig = "idle=10s | stale=5m | file=/etc/mylib.conf"

Every error is a :class:`ConfigError` with one line naming the file and the bad key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from threadhost.policy import PolicyError, check_policy, parse_duration

__all__ = ["ConfigError", "ServeConfig", "load_config"]

_ADAPTER_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ConfigError(ValueError):
    """The config file is missing, not TOML, or has a bad key; the message is one line."""


class ServeConfig(BaseModel):
    """Settings for ``threadhost serve``; command-line options override them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str | None = None  # MODULE[:CLASS]
    endpoint: str | None = None  # e.g. tcp://127.0.0.1:5555
    policy: str | None = None  # maintenance policy spec, see threadhost.policy
    policies: dict[str, str] = Field(default_factory=dict)  # slow-call name -> spec
    fast_call_limit: str | None = None  # duration: kill+restart a host whose fast call hangs
    heartbeat_timeout: str | None = None  # duration: a silent host is dead after this long
    restart_limit: int | None = Field(default=None, ge=0)  # restarts allowed within the window
    restart_window: str | None = None  # duration
    hosts: int | None = Field(default=None, ge=1, strict=True)  # host processes in the pool
    max_maintaining: int | None = Field(default=None, ge=1, strict=True)  # hosts in a slow call
    route_away_after: str | None = None  # duration: a host whose fast call runs longer is avoided
    maintain_budget: float | None = Field(default=None, gt=0, le=1)  # share of time, 1: no limit
    log_level: str | None = None  # debug, info, warning, error, critical
    # security (docs/security.md): CURVE keys
    secret_key: str | None = None  # the service's NAME.key_secret
    clients: str | None = None  # directory of public keys allowed to call
    operators: str | None = None  # directory of public keys allowed to maintain, shut down
    hosts_keys: str | None = None  # directory of host public keys (broker, attach mode)
    insecure: bool | None = None  # allow a non-loopback endpoint without CURVE

    @field_validator("adapter")
    @classmethod
    def _check_adapter(cls, v: str | None) -> str | None:
        if v is not None and not _ADAPTER_RE.fullmatch(v):
            raise ValueError(f"expected MODULE[:CLASS], got {v!r}")
        return v

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("policy")
    @classmethod
    def _check_policy(cls, v: str | None) -> str | None:
        if v is not None:
            check_policy(v)  # PolicyError is a ValueError: pydantic reports it
        return v

    @field_validator("policies")
    @classmethod
    def _check_policies(cls, v: dict[str, str]) -> dict[str, str]:
        for name, spec in v.items():
            try:
                check_policy(spec)
            except PolicyError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return v

    @field_validator("fast_call_limit", "heartbeat_timeout", "restart_window", "route_away_after")
    @classmethod
    def _check_positive_duration(cls, v: str | None) -> str | None:
        if v is not None and parse_duration(v) <= 0:
            raise ValueError(f"bad duration {v!r}: must be greater than 0")
        return v

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if v.upper() not in _LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(_LOG_LEVELS).lower()}, got {v!r}")
        return v.upper()

    @property
    def fast_call_limit_seconds(self) -> float | None:
        """``fast_call_limit`` in seconds (None when unset)."""
        return None if self.fast_call_limit is None else parse_duration(self.fast_call_limit)

    def seconds(self, key: str) -> float | None:
        """A duration setting in seconds (None when unset)."""
        value = getattr(self, key)
        return None if value is None else parse_duration(value)


def _describe(error: ValidationError) -> str:
    """One line for the first pydantic error: ``key: message`` (+ count of the rest)."""
    errors = error.errors()
    first = errors[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        text = f"unknown key {key!r}"
    else:
        message = str(first["msg"]).removeprefix("Value error, ")
        text = f"{key}: {message}"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


def load_config(path: str | Path) -> ServeConfig:
    """Read and validate a ``serve`` config file; raises :class:`ConfigError`."""
    where = f"config {path}"
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"{where}: cannot read: {reason}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    try:
        return ServeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_describe(exc)}") from None


def resolved(cfg: ServeConfig) -> dict[str, object]:
    """The settings as plain JSON-able values, durations in seconds."""
    return {
        "adapter": cfg.adapter,
        "endpoint": cfg.endpoint,
        "policy": cfg.policy,
        "policies": dict(cfg.policies),
        "log_level": cfg.log_level,
        "fast_call_limit": cfg.seconds("fast_call_limit"),
        "heartbeat_timeout": cfg.seconds("heartbeat_timeout"),
        "restart_window": cfg.seconds("restart_window"),
        "restart_limit": cfg.restart_limit,
        "hosts": cfg.hosts,
        "max_maintaining": cfg.max_maintaining,
        "route_away_after": cfg.seconds("route_away_after"),
        "maintain_budget": cfg.maintain_budget,
        "secret_key": cfg.secret_key,
        "clients": cfg.clients,
        "operators": cfg.operators,
        "hosts_keys": cfg.hosts_keys,
        "insecure": cfg.insecure,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m threadhost.config FILE``: validate FILE, print its settings as JSON (exit
    0) or its one-line error on stderr (exit 2). ``threadhost serve --config`` runs this in a
    throw-away process, so pydantic never enters the broker's (~12 MB)."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m threadhost.config FILE", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args[0])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(resolved(cfg)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
