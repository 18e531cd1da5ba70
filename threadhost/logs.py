"""Log output for broker and host processes: text (default) or one JSON object per line.

``--log-format json`` (or ``THREADHOST_LOG_FORMAT=json``, which host processes inherit from
their broker) writes each record as one line of JSON with the keys ``time`` (ISO 8601, UTC),
``level``, ``process`` (``broker`` or ``host``), ``pid``, ``logger`` and ``message``, plus
``exception`` when there is a traceback — for log shippers that parse structure.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

__all__ = ["ENV_LOG_FORMAT", "FORMATS", "JsonFormatter", "setup_logging"]

ENV_LOG_FORMAT = "THREADHOST_LOG_FORMAT"
FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "process": self.role,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str, fmt: str | None, role: str, text_format: str) -> None:
    """Configure the root logger on stderr: ``fmt`` ``json`` or ``text`` (None: from
    ``THREADHOST_LOG_FORMAT``, else text)."""
    fmt = (fmt or os.environ.get(ENV_LOG_FORMAT) or "text").lower()
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(role))
    else:
        handler.setFormatter(logging.Formatter(text_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
