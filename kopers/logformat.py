"""How Kopers' log lines look: text for people, or one JSON object per line for collectors.

JSON lines carry the time (UTC, ISO 8601), level, logger, message and, when
there is one, the exception's traceback, so a log shipper (journald, Loki,
Elasticsearch) needs no parsing rules. The message is already formatted:
build-provided text in it is data inside a JSON string, never structure.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from enum import StrEnum

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False)


def formatter(kind: LogFormat) -> logging.Formatter:
    return JsonFormatter() if kind == LogFormat.JSON else logging.Formatter(TEXT_FORMAT)


def use(kind: LogFormat) -> None:
    """Give every handler of the root logger the formatter of `kind`."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(kind))
