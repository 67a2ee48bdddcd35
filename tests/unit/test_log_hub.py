"""The log hub: numbered lines, a bounded tail, resume from any line without gaps or duplicates."""

import asyncio
from pathlib import Path

import pytest

from kopers.logs import hub as hubmod
from kopers.logs import logfile
from kopers.logs.hub import LogChannel, LogEnd, LogHub, LogLine, LogPage, LogReader


async def read_all(reader: LogReader) -> tuple[list[LogLine], LogEnd | None]:
    """Every line the reader gives until its end (LogEnd, or None for a file alone)."""
    lines: list[LogLine] = []
    while True:
        item = await reader.read()
        if item is None or isinstance(item, LogEnd):
            return lines, item
        assert item.lines and item.first == item.lines[0].number
        assert len(item.lines) <= logfile.PAGE_LINES
        lines += item.lines
        assert item.first + len(item.lines) == reader.next


def numbers(lines: list[LogLine]) -> list[int]:
    return [ln.number for ln in lines]


async def test_backlog_then_live_then_end(tmp_path: Path) -> None:
    hub = LogHub(tmp_path)
    channel = hub.open(7, "debian-12-x86_64")
    for i in range(1, 4):
        await channel.append(f"line {i}\n")
    reader = channel.follow(from_line=2)
    backlog: list[LogLine] = []
    while reader.next < 4:  # in one page or two: a wake-up may fall between the appends
        page = await reader.read()
        assert page is not None and not isinstance(page, LogEnd)
        backlog += page.lines
    assert [(ln.number, ln.text) for ln in backlog] == [(2, "line 2"), (3, "line 3")]
    waiting = asyncio.create_task(reader.read())
    await channel.append("line 4")
    live = await waiting
    assert live is not None and not isinstance(live, LogEnd)
    assert live.lines == (LogLine(4, "line 4"),)
    channel.close("succeeded", None)
    assert await reader.read() == LogEnd("succeeded", None)
    assert channel.path.read_text() == "line 1\nline 2\nline 3\nline 4\n"


async def test_a_waiting_reader_is_woken_by_the_end(tmp_path: Path) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("only")
    reader = channel.follow(2)
    waiting = asyncio.create_task(reader.read())
    await asyncio.sleep(0)
    channel.close("failed", "boom")
    assert await waiting == LogEnd("failed", "boom")


async def test_late_joiner_after_end_gets_everything_then_the_end(tmp_path: Path) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("only")
    channel.close("failed", "boom")
    lines, end = await read_all(channel.follow(1))
    assert [ln.text for ln in lines] == ["only"] and end == LogEnd("failed", "boom")


async def test_memory_holds_only_the_tail_and_the_file_serves_the_rest(tmp_path: Path) -> None:
    """200,000 lines: at most the tail bounds in memory; a reader from line 1 still gets all."""
    channel = LogHub(tmp_path).open(1, "c")
    total = 200_000
    await channel.append("\n".join(f"line {i} " + "x" * (i % 50) for i in range(1, total + 1)))
    held_lines, held_chars = channel.held()
    assert held_lines <= hubmod.TAIL_LINES and held_chars <= hubmod.TAIL_CHARS
    assert held_lines < total and channel.count == total
    channel.close("succeeded", None)
    lines, end = await read_all(channel.follow(1))
    assert numbers(lines) == list(range(1, total + 1)) and end is not None
    assert channel.held() == (held_lines, held_chars)  # reading kept no more lines...
    assert len(channel._file_pages) <= hubmod.SHARED_PAGES  # ...than a few shared pages
    assert all(ln.text.startswith(f"line {ln.number} ") for ln in lines)
    assert len(channel._index.lines) <= logfile.INDEX_MAX


async def test_the_tail_is_bounded_line_by_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hubmod, "TAIL_LINES", 10)
    monkeypatch.setattr(hubmod, "TAIL_CHARS", 100)
    channel = LogHub(tmp_path).open(1, "c")
    for i in range(1, 101):
        await channel.append(f"line {i}")
        held_lines, held_chars = channel.held()
        assert held_lines <= 10 and held_chars <= 100
    assert channel.held() == (10, sum(len(f"line {i}") for i in range(91, 101)))


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bounds small enough that a few hundred lines cross every boundary."""
    monkeypatch.setattr(hubmod, "TAIL_LINES", 40)
    monkeypatch.setattr(logfile, "PAGE_LINES", 7)
    monkeypatch.setattr(logfile, "PAGE_BYTES", 100)
    monkeypatch.setattr(logfile, "INDEX_STEP", 64)
    monkeypatch.setattr(logfile, "INDEX_MAX", 8)
    monkeypatch.setattr(logfile, "CHUNK", 256)


STARTS = [*range(1, 203), 250]  # every line, the first beyond the end, and far beyond


async def test_resume_from_any_line_across_file_and_memory(tmp_path: Path, small: None) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    for i in range(1, 201):
        await channel.append(f"line {i}")
    assert channel._tail[0].number == 161  # lines 1-160 only in the file
    channel.close("succeeded", None)
    for start in STARTS:
        lines, _ = await read_all(channel.follow(start))
        assert [(ln.number, ln.text) for ln in lines] == [
            (i, f"line {i}") for i in range(start, 201)
        ], start


async def test_resume_from_any_line_after_a_restart(tmp_path: Path, small: None) -> None:
    """A new process counts the file and keeps none of it; live lines follow on."""
    for start in STARTS:
        before = LogHub(tmp_path / str(start)).open(1, "c")
        await before.append("\n".join(f"line {i}" for i in range(1, 201)))
        restarted = LogHub(tmp_path / str(start)).open(1, "c")
        reader = restarted.follow(start)
        pending = asyncio.create_task(reader.read())
        await asyncio.sleep(0)
        for i in range(201, 204):
            await restarted.append(f"line {i}")
        restarted.close("succeeded", None)
        item = await pending
        got = [] if isinstance(item, LogEnd) or item is None else list(item.lines)
        if got:
            got += (await read_all(reader))[0]
        assert [(ln.number, ln.text) for ln in got] == [
            (i, f"line {i}") for i in range(start, 204)
        ], start
        assert restarted.held()[0] == 3


async def test_reading_from_the_file_while_lines_flood_in(tmp_path: Path, small: None) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("\n".join(f"line {i}" for i in range(1, 101)))

    async def produce() -> None:
        for i in range(101, 1001):
            await channel.append(f"line {i}")
        channel.close("succeeded", None)

    producer = asyncio.create_task(produce())
    readers = [channel.follow(start) for start in (1, 30, 95, 150)]
    results = await asyncio.gather(*(read_all(r) for r in readers))
    await producer
    for reader_lines, start in zip(results, (1, 30, 95, 150), strict=True):
        assert numbers(reader_lines[0]) == list(range(start, 1001))


async def test_a_task_that_runs_again_continues_its_log(tmp_path: Path) -> None:
    """Reopened after its end, or after a restart (a new hub): numbering goes on."""
    hub = LogHub(tmp_path)
    first = hub.open(1, "c")
    await first.append("old\r with a carriage return")
    assert hub.open(1, "c") is first
    first.close("failed", None)
    second = hub.open(1, "c")
    assert second is not first
    await second.append("new")
    assert second.count == 2
    restarted = LogHub(tmp_path).open(1, "c")
    await restarted.say("attempt 2")
    assert restarted.count == 3
    restarted.close("succeeded", None)
    lines, _ = await read_all(restarted.follow(1))
    assert lines == [
        LogLine(1, "old\u240d with a carriage return"),  # stored visible
        LogLine(2, "new"),
        LogLine(3, "kopers: attempt 2", kopers=True),
    ]


async def test_a_line_cut_short_by_a_crash_is_ended_before_the_next(tmp_path: Path) -> None:
    path = LogHub(tmp_path).path(1, "c")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"whole\nhalf a li")
    lines, _ = await read_all(LogHub(tmp_path).replay(1, "c"))
    assert [ln.text for ln in lines] == ["whole", "half a li"]
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("next")
    assert path.read_bytes() == b"whole\nhalf a li\nnext\n" and channel.count == 3


async def test_a_giant_line_from_an_older_kopers_is_cut_when_read(
    tmp_path: Path, small: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfile, "MAX_LINE", 300)
    path = LogHub(tmp_path).path(1, "c")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"before\n" + b"y" * 5000 + b"\nafter\n")
    lines, _ = await read_all(LogHub(tmp_path).replay(1, "c"))
    assert [ln.text for ln in lines] == ["before", "y" * logfile.MAX_LINE, "after"]


async def test_long_lines_are_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logfile, "MAX_LINE", 4)
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("abcdefghij")
    await channel.append("")
    assert channel.path.read_text() == "abcd\nefgh\nij\n\n" and channel.count == 4


async def test_replay_serves_an_ended_task_from_its_file(tmp_path: Path) -> None:
    hub = LogHub(tmp_path)
    channel = hub.open(3, "c")
    for text in ("a", "b", "c"):
        await channel.append(text)
    channel.close("succeeded", None)
    hub.forget(3, "c")
    reader = hub.replay(3, "c", 2)
    lines, end = await read_all(reader)
    assert lines == [LogLine(2, "b"), LogLine(3, "c")] and end is None and reader.next == 4
    assert await read_all(hub.replay(4, "c")) == ([], None)
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


async def test_readers_at_the_same_place_share_a_page(tmp_path: Path) -> None:
    channel = LogChannel(tmp_path / "log")
    for text in ("x", "y"):
        await channel.append(text)
    one, two = channel.follow(), channel.follow()
    assert await one.read() is await two.read()


@pytest.mark.parametrize("small_write", [hubmod.SMALL_WRITE, 0])
async def test_a_canceled_append_is_written_and_numbered_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, small_write: int
) -> None:
    """The runner is canceled mid-line (the user cancels, a limit fires): numbers stay true."""
    monkeypatch.setattr(hubmod, "SMALL_WRITE", small_write)  # 0: every write in a thread
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("first")
    writing = asyncio.create_task(channel.append("second"))
    await asyncio.sleep(0)  # it is on its way to the file
    writing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writing
    await channel.say("build canceled by the user")
    channel.close("canceled", None)
    from_memory, _ = await read_all(channel.follow(1))
    from_file, _ = await read_all(LogHub(tmp_path).replay(1, "c"))
    assert from_memory == from_file
    assert [ln.text for ln in from_file] == [
        "first",
        "second",
        "kopers: build canceled by the user",
    ]


async def test_readers_anywhere_in_the_file_soon_share_its_pages(
    tmp_path: Path, small: None
) -> None:
    """Many viewers far behind cost one read and one page per place in the file, not each."""
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("\n".join(f"line {i}" for i in range(1, 201)))
    channel.close("succeeded", None)
    readers = [channel.follow(start) for start in (1, 2, 4, 9)]
    seen: dict[int, list[LogPage]] = {}
    while any(r.next < channel._tail_first() for r in readers):
        for reader in readers:  # in step, as viewers reading at the same pace
            if reader.next < channel._tail_first():
                page = await reader.read()
                assert isinstance(page, LogPage)
                seen.setdefault(page.first, []).append(page)
                assert len(channel._file_pages) <= hubmod.SHARED_PAGES
    shared = [pages for pages in seen.values() if len(pages) == len(readers)]
    assert len(shared) > len(seen) / 2
    assert all(page is pages[0] for pages in shared for page in pages)
    for reader in readers:
        lines, _ = await read_all(reader)
        assert lines[-1].number == 200
