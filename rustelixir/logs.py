"""How the node's log lines look: `text` (the default, one line per record, as
`logging.basicConfig` writes them) or `json`, one JSON object per line for log pipelines:

    {"time": "2026-12-07T14:03:12.345Z", "level": "INFO", "logger": "rustelixir.node",
     "message": "connected to app@10.0.0.2 (accepted)", "peer": "app@10.0.0.2"}

Fields beyond the four are those a log call passes in `extra=` (`FIELDS`: the peer a line is
about, the native, the :pg scope); an exception's traceback is the field `exception`."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

__all__ = ["FORMATS", "FIELDS", "JsonFormatter", "configure"]

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("peer", "native", "scope")


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON (newlines in messages and tracebacks escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in FIELDS:
            value = getattr(record, field, None)
            if value is not None:
                line[field] = str(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: int, log_format: str = "text") -> None:
    """The root logger writes records of `level` and above to stderr in `log_format`."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: expected one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
