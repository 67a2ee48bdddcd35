"""A task's live log file (`builder-live.log`): whose each line is, and the file work.

The file is the log. Lines are UTF-8, separated by "\\n" only ("\\r" is part
of a line), and a line starts with MARK ("kopers: ") if and only if Kopers
wrote it:
- Kopers' lines are MARK + the text, its control characters shown as
  visible symbols (U+2400...), so the text stays one harmless line.
- A build line whose visible text contains "kopers:" in any case is stored
  as ESCAPE ("| ") + the line, its control characters shown as visible
  symbols, so that it cannot pass for Kopers' in a terminal either. The
  visible text is the line without ANSI escape sequences, NFKC-normalised,
  keeping only ASCII letters, digits and colons: "\\r", "\\x1b[2K", leading
  blanks or zero-width characters do not hide the word. Other build lines
  are stored as printed, but for their control characters, line separators
  and bidi controls, which are shown as symbols too: a "\r" or a cursor
  move would otherwise paint a Kopers-looking line over them on a screen.
- No line is longer than MAX_LINE characters (the hub cuts longer ones).

The work that grows with the file (counting lines when a task's log is
reopened, finding line N, reading a page of lines) runs in threads, reads in
chunks and holds at most a chunk or a page. A LineIndex of at most INDEX_MAX
entries says where some lines start, so finding any line reads at most
about one index step.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from array import array
from pathlib import Path

MARK = "kopers: "
ESCAPE = "| "
MAX_LINE = 64 << 10  # characters
PAGE_LINES = 1000  # one page, read from the file or the hub's memory...
PAGE_BYTES = 64 << 10  # ...and about this many bytes (characters in memory)
INDEX_STEP = 64 << 10  # bytes of file between index entries, doubled as the index fills
INDEX_MAX = 2048
CHUNK = 1 << 20  # one read when counting or skipping lines

_SEQUENCE = re.compile(  # ANSI escape sequences: OSC, CSI, and the short ones
    r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]|\x1b[ -/]*[0-~]"
)
_NOT_MARK = re.compile(r"[^0-9a-z:]+")
_SHOWN = {c: chr(0x2400 + c) for c in range(0x20) if c != 0x09}
_SHOWN |= {0x7F: "\u2421"} | {c: "\ufffd" for c in range(0x80, 0xA0)}
# Line and paragraph separators break a line in browsers and splitlines();
# bidi controls reorder what a terminal or page shows.
_SHOWN |= {0x2028: "\u2424", 0x2029: "\u2424"}
_SHOWN |= {
    c: "\ufffd" for c in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
}

Position = tuple[int, int]  # a line number, and the file offset where that line starts


def looks_like_kopers(text: str) -> bool:
    """Whether a build line could be read as Kopers' own, on screen or by a parser."""
    if text.isascii() and ":" not in text:
        return False  # the common case, decided without a copy
    visible = _SEQUENCE.sub("", text)
    if not visible.isascii():
        visible = unicodedata.normalize("NFKC", visible)
    return "kopers:" in _NOT_MARK.sub("", visible.casefold())


def stored(text: str, kopers: bool) -> str:
    """The line as the file holds it."""
    if kopers:
        return MARK + text.translate(_SHOWN)
    if looks_like_kopers(text):
        return ESCAPE + text.translate(_SHOWN)
    # Every build line shows its controls: a "\r" or a cursor move could
    # otherwise paint a Kopers-looking line over it in a terminal.
    return text if text.isprintable() else text.translate(_SHOWN)


def is_kopers(line: str) -> bool:
    """Whether a stored line is Kopers' own."""
    return line.startswith(MARK)


def encoded(text: str) -> tuple[str, bytes]:
    """A stored line as reading it back will give it, and its bytes with the newline."""
    try:
        return text, (text + "\n").encode()
    except UnicodeEncodeError:  # lone surrogates
        raw = (text + "\n").encode("utf-8", "replace")
        return raw[:-1].decode(), raw


class LineIndex:
    """Where some lines start in the file: (line, offset) pairs, at most INDEX_MAX."""

    def __init__(self) -> None:
        self.lines = array("q", [1])
        self.offsets = array("q", [0])
        self.step = INDEX_STEP

    def saw(self, line: int, offset: int) -> None:
        """Line `line` starts at `offset` (lines come in order)."""
        if offset < self.offsets[-1] + self.step:
            return
        self.lines.append(line)
        self.offsets.append(offset)
        if len(self.lines) > INDEX_MAX:
            # Thin out rather than grow: finding a line then reads at most twice as far.
            self.lines, self.offsets, self.step = self.lines[::2], self.offsets[::2], self.step * 2

    def around(self, line: int) -> tuple[Position, int | None]:
        """The last indexed position at or before `line`, and the next indexed line."""
        i = bisect.bisect_right(self.lines, line)
        following = self.lines[i] if i < len(self.lines) else None
        return (self.lines[i - 1], self.offsets[i - 1]), following


# In threads from here on.


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data)


def scan(path: Path) -> tuple[int, int, LineIndex]:
    """Lines, size and index of an existing log, read in chunks.

    A last line cut short (Kopers stopped mid-write) gets its newline, so
    that the next line does not run on from it.
    """
    index, count, offset, last = LineIndex(), 0, 0, b"\n"
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                start = 0
                while (mark := index.offsets[-1] + index.step - offset) < len(chunk):
                    nl = chunk.find(b"\n", max(mark - 1, start))
                    if nl < 0:
                        break
                    count += chunk.count(b"\n", start, nl + 1)
                    start = nl + 1
                    index.saw(count + 1, offset + start)
                count += chunk.count(b"\n", start)
                offset += len(chunk)
                last = chunk[-1:]
    except FileNotFoundError:
        return 0, 0, index
    if offset and last != b"\n":
        append(path, b"\n")
        count, offset = count + 1, offset + 1
    return count, offset, index


def read_lines(
    path: Path, at: Position, first: int, last: int | None
) -> tuple[list[str], Position]:
    """Up to a page of lines from line `first`, none past `last`; and the next position.

    `at` is a position at or before `first`. With no `last`, the file's end
    is the log's end, and a last line without its newline counts.
    """
    line, offset = at
    texts: list[str] = []
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        return texts, at
    with fh:
        fh.seek(offset)
        while line < first:  # skip to `first`, a chunk at a time
            chunk = fh.read(CHUNK)
            if not chunk:
                return texts, (line, offset)
            n = chunk.count(b"\n")
            if line + n < first:
                line, offset = line + n, offset + len(chunk)
                continue
            pos = -1
            for _ in range(first - line):
                pos = chunk.find(b"\n", pos + 1)
            line, offset = first, offset + pos + 1
            fh.seek(offset)
        limit = PAGE_LINES if last is None else min(PAGE_LINES, last - first + 1)
        data = fh.read(PAGE_BYTES)
        dropped = 0  # of a line too long to keep (only an older Kopers wrote those)
        while len(texts) < limit and data:
            nl = data.find(b"\n")
            if nl < 0 and texts:
                break  # the rest is for the next page
            if nl < 0:  # one line longer than a page: read on for its end
                more = fh.read(PAGE_BYTES)
                if more:
                    dropped += max(len(data) - 4 * MAX_LINE, 0)
                    data = data[: 4 * MAX_LINE] + more
                    continue
                if last is not None:
                    break  # being written
                nl = len(data)
            texts.append(data[:nl].decode("utf-8", "replace")[:MAX_LINE])
            offset += dropped + nl + 1
            dropped, data = 0, data[nl + 1 :]
        return texts, (first + len(texts), offset)
