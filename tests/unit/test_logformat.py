"""JSON log lines: one object per line, whatever the message holds."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from kopers import config as config_mod
from kopers.errors import ConfigError
from kopers.logformat import LogFormat, formatter, use


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            exc_info = sys.exc_info()
    return logging.LogRecord("kopers.test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_a_json_line_is_one_object_with_the_formatted_message() -> None:
    line = formatter(LogFormat.JSON).format(record("task %d: %s", 7, 'a "quoted"\nline}'))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == 'task 7: a "quoted"\nline}'
    assert (entry["level"], entry["logger"]) == ("warning", "kopers.test")
    assert entry["time"].endswith("+00:00")


def test_an_exception_travels_inside_the_object() -> None:
    entry = json.loads(formatter(LogFormat.JSON).format(record("failed", exc=True)))
    assert "ValueError: boom" in entry["exception"]


def test_use_switches_the_root_handlers() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        use(LogFormat.JSON)
        logging.getLogger("kopers.x").warning("hello %s", "there")
        assert json.loads(stream.getvalue())["message"] == "hello there"
        use(LogFormat.TEXT)
        logging.getLogger("kopers.x").warning("plain")
        assert stream.getvalue().splitlines()[-1].endswith("WARNING kopers.x: plain")
    finally:
        root.removeHandler(handler)


def test_the_setting_takes_text_or_json_only(tmp_path: Path) -> None:
    env = {"KOPERS_DATA_DIR": str(tmp_path)}
    assert config_mod.load(None, env).server.log_format == LogFormat.TEXT
    cfg = config_mod.load(None, env | {"KOPERS_SERVER_LOG_FORMAT": "json"})
    assert cfg.server.log_format == LogFormat.JSON
    with pytest.raises(ConfigError, match="log_format must be text or json"):
        config_mod.load(None, env | {"KOPERS_SERVER_LOG_FORMAT": "xml"})
