"""`serve --log-format json`: every line the node logs is one JSON object, with the fields a
log pipeline indexes (time, level, logger, message, and the peer or native a line is about)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path

import pytest

from rustelixir import Atom
from rustelixir.logs import JsonFormatter

from beamnodes import TEST_NATIVES, ServedNode, calling
from conftest import runtime_or_skip

COOKIE = "rustelixir-logs-cookie"


@pytest.mark.beam
def test_json_log_lines_parse_one_per_line(tmp_path: Path) -> None:
    node = ServedNode(tmp_path, cookie=COOKIE, extra=["--log-format", "json", "-v", "--module", "natives_fixture", "--module", TEST_NATIVES])
    try:
        with calling(runtime_or_skip("otp25"), tmp_path / "beam", node) as client:
            assert client.eval("gen_server:call({rustelixir, Node}, {add, 1, 2}).") == (Atom("ok"), 3)
            failed = client.eval("gen_server:call({rustelixir, Node}, {boom}).")
            assert failed[0] == Atom("error")
            peer = client.name
    finally:
        node.stop()
    lines = node.log_path.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # each line, whole, is one object
    assert len(records) >= 3
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys()
        assert datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert record["level"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    connected = [r for r in records if r["message"].startswith("connected to")]
    assert connected and connected[0]["peer"] == peer and connected[0]["logger"] == "rustelixir.node"
    raised = [r for r in records if r.get("native") == "boom/0"]
    assert raised and "Traceback" in raised[0]["message"]
    assert any(r["message"] == "shutting down" for r in records)


def test_a_record_with_a_traceback_and_newlines_is_one_line() -> None:
    logger = logging.getLogger("rustelixir.test")
    try:
        raise ValueError("two\nlines")
    except ValueError:
        record = logger.makeRecord("rustelixir.test", logging.ERROR, __file__, 1, "failed: %s", ("a\nb",), None,
                                   extra={"peer": "x@y"})  # fmt: skip
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed: a\nb" and parsed["peer"] == "x@y" and "ValueError: two\nlines" in parsed["exception"]
