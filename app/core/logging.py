"""Structured logs: one JSON object per line, each carrying the request id."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Employee links carry their token in the path; no token may ever reach a log line.
# Repeated slashes are tolerated: a client (or a scanner) may send ``//r/<token>``, and
# the line is written whether or not a route matched.
_TOKEN_PATH = re.compile(r"^(/+(?:r|m|v1/+respond|v1/+meetings)/+)[^/]+")


def mask_path(path: str) -> str:
    """The path with any personal-link token replaced by ``***``."""
    return _TOKEN_PATH.sub(lambda m: f"{m.group(1)}***", path)


def _request_id(record: logging.LogRecord) -> str | None:
    """The id stamped on the record (``extra``), else the current request's."""
    rid = getattr(record, "request_id", None)
    return rid if isinstance(rid, str) and rid else request_id_var.get()


# uvicorn's records carry ``color_message``, the message again with ANSI colour codes;
# in a JSON line it is only noise (and escape sequences) for whatever reads the logs.
_RESERVED = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime", "color_message"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = _request_id(record)
        if rid:
            out["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = _request_id(record)
        base = super().format(record)
        return f"{base} [{rid}]" if rid else base


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route our logs and uvicorn's through one handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JSONFormatter() if fmt == "json" else TextFormatter("%(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our middleware writes the access log, with tokens masked; uvicorn's would not.
    logging.getLogger("uvicorn.access").disabled = True
