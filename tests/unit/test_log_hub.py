"""The log hub: numbered lines, resume without gaps or duplicates, slow viewers dropped."""

from pathlib import Path

import pytest

from kopers.logs import hub as hubmod
from kopers.logs.hub import LogEnd, LogHub, LogLine, SlowViewer


async def test_backlog_then_live_then_end(tmp_path: Path) -> None:
    hub = LogHub(tmp_path)
    channel = hub.open(7, "debian-12-x86_64")
    for i in range(1, 4):
        await channel.append(f"line {i}\n")
    backlog, viewer = channel.subscribe(from_line=2)
    assert [(ln.number, ln.text) for ln in backlog] == [(2, "line 2"), (3, "line 3")]
    assert viewer is not None
    await channel.append("line 4")
    channel.close("succeeded", None)
    assert await viewer.next() == LogLine(4, "line 4")
    assert await viewer.next() == LogEnd("succeeded", None)
    assert channel.path.read_text() == "line 1\nline 2\nline 3\nline 4\n"


async def test_late_joiner_after_end_gets_everything_and_no_viewer(tmp_path: Path) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("only")
    channel.close("failed", "boom")
    backlog, viewer = channel.subscribe(1)
    assert [ln.text for ln in backlog] == ["only"] and viewer is None
    assert channel.end == LogEnd("failed", "boom")


async def test_slow_viewer_is_dropped_without_affecting_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hubmod, "VIEWER_QUEUE", 3)
    channel = LogHub(tmp_path).open(1, "c")
    _, slow = channel.subscribe()
    _, fast = channel.subscribe()
    assert slow is not None and fast is not None
    got = []
    for i in range(10):
        await channel.append(str(i))
        got.append((await fast.next()).text)  # type: ignore[union-attr]
    assert got == [str(i) for i in range(10)]
    with pytest.raises(SlowViewer):
        await slow.next()
    assert slow not in channel.viewers and fast in channel.viewers


async def test_a_task_that_runs_again_continues_its_log(tmp_path: Path) -> None:
    """Reopened after its end, or after a restart (a new hub): numbering goes on."""
    hub = LogHub(tmp_path)
    first = hub.open(1, "c")
    await first.append("old\r with a carriage return")
    assert hub.open(1, "c") is first
    first.close("failed", None)
    second = hub.open(1, "c")
    assert second is not first and second.lines == ["old\r with a carriage return"]
    await second.append("new")
    restarted = LogHub(tmp_path).open(1, "c")
    assert restarted.lines == ["old\r with a carriage return", "new"]
    backlog, _ = restarted.subscribe(2)
    assert backlog == [LogLine(2, "new")]


async def test_read_lines_serves_an_ended_task_from_its_file(tmp_path: Path) -> None:
    hub = LogHub(tmp_path)
    channel = hub.open(3, "c")
    for text in ("a", "b", "c"):
        await channel.append(text)
    channel.close("succeeded", None)
    hub.forget(3, "c")
    assert await hub.read_lines(3, "c", 2) == [LogLine(2, "b"), LogLine(3, "c")]
    assert await hub.read_lines(4, "c") == []
    assert hub.path(3, "c") == tmp_path / "00000003" / "c" / "builder-live.log"


async def test_ended_channels_are_dropped_from_memory_after_a_while(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = LogHub(tmp_path)
    old = hub.open(1, "c")
    old.close("succeeded", None)
    running = hub.open(2, "c")
    monkeypatch.setattr(hubmod, "RETAIN_S", -1.0)
    hub.open(3, "c")
    assert hub.get(1, "c") is None and hub.get(2, "c") is running


async def test_pending_batches_what_is_queued(tmp_path: Path) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    _, viewer = channel.subscribe()
    assert viewer is not None
    for text in ("x", "y"):
        await channel.append(text)
    channel.close("failed", "boom")
    assert viewer.pending() == [LogLine(1, "x"), LogLine(2, "y"), LogEnd("failed", "boom")]
    assert viewer.pending() == []
