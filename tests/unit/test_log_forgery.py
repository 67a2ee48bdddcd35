"""A build cannot print a line that passes for Kopers' own: in the file, on the page, on a tty."""

import unicodedata
from pathlib import Path

import pytest

from kopers.logs import logfile
from kopers.logs.hub import LogEnd, LogHub, LogLine, LogReader
from kopers.logs.logfile import MARK

FORGED = "kopers: task ended succeeded"
ATTEMPTS = [
    FORGED,
    "kopers: builder started on kopers-vm-1 (warm VM, ready 0.1 s after it was asked for)",
    "\r" + FORGED,
    "\x1b[2K" + FORGED,
    "\x1b[2K\r" + FORGED,
    "   " + FORGED,
    "\t" + FORGED,
    "\x00\x07" + FORGED,
    "\x1b]0;a title\x07" + FORGED,
    "\x1b[1G" + FORGED,
    "\x9b2K" + FORGED,
    "building... 42%\r" + FORGED,
    "x\x08" + FORGED,
    "KOPERS: task ended succeeded",
    "Kopers: task ended succeeded",
    "ko\x1b[0mpers: task ended succeeded",
    "\u200bkopers: task ended succeeded",
    "k\u200dopers: task ended succeeded",
    "\ufeffkopers: task ended succeeded",
    "\u00a0kopers: task ended succeeded",
    "\uff4b\uff4f\uff50\uff45\uff52\uff53\uff1a task ended succeeded",  # fullwidth
    "kopers : task ended succeeded",
    "ok\u2028kopers: task ended succeeded",
    "ok\x85kopers: task ended succeeded",
    "| kopers: task ended succeeded",  # what an escaped line looks like
]
HARMLESS = [
    "gcc -O2 -g -c hello.c",
    "kopers-builder: rpmbuild -bb failed with exit code 1",
    "Vendor: Kopers project lara/live",
    "",
    "   indented: with a colon",
    "caf\u00e9: na\u00efve",
]


def controls(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) == "Cc" and c != "\t"]


async def read_all(reader: LogReader) -> list[LogLine]:
    lines: list[LogLine] = []
    while (item := await reader.read()) is not None and not isinstance(item, LogEnd):
        lines += item.lines
    return lines


@pytest.mark.parametrize("text", ATTEMPTS)
def test_a_line_that_could_pass_for_kopers_is_escaped(text: str) -> None:
    assert logfile.looks_like_kopers(text)
    line = logfile.stored(text, kopers=False)
    assert line.startswith(logfile.ESCAPE) and not line.startswith(MARK)
    # Nothing left in it that a terminal would act on (move, erase, return).
    assert controls(line) == []


@pytest.mark.parametrize("text", HARMLESS)
def test_other_build_lines_are_stored_as_printed(text: str) -> None:
    assert not logfile.looks_like_kopers(text)
    assert logfile.stored(text, kopers=False) == text


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[32mPASS\x1b[0m: test-suite", "\u241b[32mPASS\u241b[0m: test-suite"),
        ("downloading... 50%\rdownloading... 100%", "downloading... 50%\u240ddownloading... 100%"),
        # Each would paint a Kopers-looking line on a screen without saying "kopers:".
        ("  pers: task ended succeeded\rko", "  pers: task ended succeeded\u240dko"),
        ("\x1b[3Gpers: task ended\x1b[1Gko", "\u241b[3Gpers: task ended\u241b[1Gko"),
        ("\x1b[1A\x1b[7C: task ended", "\u241b[1A\u241b[7C: task ended"),
        ("ok\u2028second line", "ok\u2424second line"),
        ("abc\u202edesrever", "abc\ufffddesrever"),
    ],
)
def test_every_build_lines_controls_are_shown_not_acted_on(text: str, shown: str) -> None:
    line = logfile.stored(text, kopers=False)
    assert line == shown and controls(line) == []
    assert len(line.splitlines()) == 1


async def test_only_kopers_lines_carry_the_mark_in_the_file_and_after_a_restart(
    tmp_path: Path,
) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    await channel.say("builder started on vm-1")
    for text in ATTEMPTS + HARMLESS:
        await channel.append(text)
    await channel.say("task ended failed: the package failed to build; see build.log")
    said = {1, channel.count}

    lines = channel.path.read_bytes().decode().split("\n")[:-1]
    assert len(lines) == channel.count == len(ATTEMPTS) + len(HARMLESS) + 2
    assert {n for n, text in enumerate(lines, 1) if text.startswith(MARK)} == said
    assert lines[0] == "kopers: builder started on vm-1"
    assert lines[-1] == "kopers: task ended failed: the package failed to build; see build.log"

    live = channel._tail
    channel.close("failed", "boom")
    hub = LogHub(tmp_path)  # as after a restart: only the file is left
    read_back = await read_all(hub.replay(1, "c"))
    assert read_back == list(live)  # same numbers, texts and flags as when appended
    assert {ln.number for ln in read_back if ln.kopers} == said
    assert [ln.text for ln in read_back] == lines


async def test_kopers_own_line_stays_one_line_whatever_it_quotes(tmp_path: Path) -> None:
    """User text in Kopers' lines (a clone URL, say) cannot start a line of its own."""
    channel = LogHub(tmp_path).open(1, "c")
    await channel.say("cloning https://example.org/x\nkopers: task ended succeeded\r")
    await channel.append("after")
    text = channel.path.read_text()
    assert text.count("\n") == 2 and channel.count == 2
    assert text.startswith("kopers: cloning https://example.org/x\u240akopers: task ended")
    assert controls(text.split("\n")[0]) == []


async def test_a_forged_line_cut_out_of_a_long_one_is_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logfile, "MAX_LINE", 10)
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("0123456789" + FORGED)
    await channel.append("ok\n" + FORGED)  # several lines in one call
    lines = channel.path.read_text().split("\n")[:-1]
    assert lines[0] == "0123456789" and len(lines) == channel.count
    assert not any(line.startswith(MARK) for line in lines)
    assert lines.count("| kopers: ta") == 2 and "ok" in lines


async def test_text_that_utf8_cannot_hold_reads_back_as_written(tmp_path: Path) -> None:
    channel = LogHub(tmp_path).open(1, "c")
    await channel.append("bad \udcff byte")
    channel.close("succeeded", None)
    assert [ln.text for ln in await read_all(channel.follow(1))] == ["bad ? byte"]
    assert list(channel._tail) == [LogLine(1, "bad ? byte")]
