"""Read an audience file: CSV (a ``user_id`` column, else the first) or one user id per line.

Pure parsing, no Redis: the result is the unique ids in first-seen order plus what was dropped
and why. Bad lines are skipped and reported with their line numbers unless there are more than
``max_bad_share`` of them, which usually means the wrong file or the wrong column.

One-id-per-line files take a fast path: a few C-level passes (``join``, ``isprintable``,
``min``/``max`` of lengths) clear blocks of lines at once, so only blocks holding a blank,
comment, quoted or bad line go through per-line Python code. A million clean ids parse in
about 0.4 s, half of it the ``set`` that detects duplicates.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from journeys.errors import InvalidInput, Problem

MAX_USER_ID = 128
MAX_LISTED_BAD = 20  # bad lines named in the error; the summary counts the rest
_QUOTES = "\"'"
# A first row equal to one of these names is a header, although it is a valid id.
HEADER_NAMES = frozenset({"user_id", "userid", "user-id", "user", "uid", "id"})
_TEXT_LIMIT = 200  # of BadLine.text: a runaway line must not fill the terminal
_BLOCK = 512  # lines checked at once on the fast path


@dataclass(frozen=True)
class BadLine:
    """A data line that was skipped: its 1-based line number in the file, text and why."""

    line: int
    text: str
    reason: str


@dataclass
class ParsedAudience:
    """What a file held: unique ids (first-seen order) and what was dropped."""

    ids: list[str]
    lines: int  # data lines read: not blank, not a comment, not the header
    duplicates: int
    bad: list[BadLine]
    header: str | None = field(default=None)  # the header line skipped, if any


def check_user_id(text: str) -> tuple[str, str | None]:
    """``(user id, None)`` for a valid id, else ``(cleaned text, reason)``.

    ``text`` loses surrounding whitespace and quotes; the id must then be 1 to
    ``MAX_USER_ID`` characters without whitespace or control characters.
    """
    value = text.strip()
    if value[:1] in _QUOTES or value[-1:] in _QUOTES:
        value = value.strip(_QUOTES).strip()
    if not value:
        return value, "empty user id"
    if len(value) > MAX_USER_ID:
        return value, f"user id longer than {MAX_USER_ID} characters"
    # isprintable() is False for every whitespace character except " " and for control,
    # format and unassigned characters: one C-level call covers all rules but the space.
    if value.isprintable() and " " not in value:
        return value, None
    if any(c.isspace() for c in value):
        return value, "whitespace inside user id"
    return value, "control character inside user id"


def read_audience_file(path: Path, *, max_bad_share: float = 0.01) -> ParsedAudience:
    """Parse the UTF-8 file at ``path`` (BOM and CRLF / CR line ends are fine)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(source, [Problem("", f"cannot read file: {exc.strerror}")]) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(source, [Problem(f"line {line}", "not UTF-8 text")]) from exc
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return parse_audience_lines(text.split("\n"), source=source, max_bad_share=max_bad_share)


def parse_audience_lines(
    lines: Iterable[str], *, source: str, max_bad_share: float = 0.01
) -> ParsedAudience:
    """Parse the lines of an audience file (with or without line ends).

    The format follows the first line that is neither blank nor a ``#`` comment: with a comma
    or a tab it is CSV, otherwise one id per line. Raises :class:`InvalidInput` when there is no
    id at all, or when bad lines exceed ``max_bad_share`` of the data lines by at least one.
    """
    if not 0.0 <= max_bad_share <= 1.0:
        raise ValueError(f"max_bad_share must be between 0 and 1, got {max_bad_share}")
    rows = list(lines)
    if rows and rows[0].startswith("\ufeff"):
        rows[0] = rows[0][1:]
    first = next((i for i, s in enumerate(rows) if _is_data(s.strip())), None)
    if first is None:
        raise InvalidInput(source, [Problem("", "no user ids found")])
    head = rows[first]
    if "," in head or "\t" in head:
        delimiter = "\t" if head.count("\t") > head.count(",") else ","
        values, count, bad, header = _parse_csv(rows, first, delimiter, source=source)
    else:
        values, count, bad, header = _parse_plain(rows, first)
    # set() is about twice as fast as dict.fromkeys, and most files have no duplicates
    ids = values if len(set(values)) == len(values) else list(dict.fromkeys(values))
    _check_bad_share(source, bad, lines=count, share=max_bad_share, found=len(ids))
    return ParsedAudience(
        ids=ids, lines=count, duplicates=len(values) - len(ids), bad=bad, header=header
    )


def _is_data(stripped: str) -> bool:
    return bool(stripped) and not stripped.startswith("#")


def _is_header(cell: str) -> bool:
    value, reason = check_user_id(cell)
    return reason is not None or value.lower() in HEADER_NAMES


def _bad(rows: list[str], index: int, reason: str) -> BadLine:
    return BadLine(index + 1, rows[index].rstrip("\r\n")[:_TEXT_LIMIT], reason)


def _parse_plain(rows: list[str], first: int) -> tuple[list[str], int, list[BadLine], str | None]:
    header = rows[first].strip() if _is_header(rows[first]) else None
    start = first + 1 if header is not None else first
    body = [s.strip() for s in islice(rows, start, None)]
    values: list[str] = []
    bad: list[BadLine] = []
    skipped = 0
    for low in range(0, len(body), _BLOCK):
        block = body[low : low + _BLOCK]
        if _all_plain(block):
            values += block
            continue
        for i, text in enumerate(block, low):
            if not _is_data(text):
                skipped += 1
                continue
            value, reason = check_user_id(text)
            if reason is None:
                values.append(value)
            else:
                bad.append(_bad(rows, start + i, reason))
    return values, len(body) - skipped, bad, header


def _all_plain(block: list[str]) -> bool:
    """Every stripped line of ``block`` is a valid id as it stands (a few C-level passes).

    Stricter than needed (a ``#`` or quote anywhere sends the block down the per-line path),
    which costs time on such blocks, never correctness.
    """
    joined = "".join(block)
    return (
        min(map(len, block)) > 0
        and max(map(len, block)) <= MAX_USER_ID
        and joined.isprintable()
        and " " not in joined
        and "#" not in joined
        and '"' not in joined
        and "'" not in joined
    )


def _parse_csv(
    rows: list[str], first: int, delimiter: str, *, source: str
) -> tuple[list[str], int, list[BadLine], str | None]:
    reader = csv.reader(islice(rows, first, None), delimiter=delimiter)
    values: list[str] = []
    bad: list[BadLine] = []
    count = 0
    column = -1
    header: str | None = None
    try:
        for row in reader:
            if not row or row[0].lstrip()[:1] == "#" or not "".join(row).strip():
                continue  # blank, comment, or only empty cells (spreadsheet exports)
            if column < 0:
                names = [cell.strip().lower() for cell in row]
                column = names.index("user_id") if "user_id" in names else 0
                if "user_id" in names or _is_header(row[0]):
                    header = rows[first + reader.line_num - 1].rstrip("\r\n")
                    continue
            count += 1
            cell = row[column] if len(row) > column else None
            if cell and _plain(cell):
                values.append(cell)
                continue
            # the row's last physical line (a quoted cell may span several)
            index = first + reader.line_num - 1
            if cell is None:
                bad.append(_bad(rows, index, "missing user_id column value"))
                continue
            value, reason = check_user_id(cell)
            if reason is None:
                values.append(value)
            else:
                bad.append(_bad(rows, index, reason))
    except csv.Error as exc:
        line = first + reader.line_num
        raise InvalidInput(source, [Problem(f"line {line}", f"unreadable CSV: {exc}")]) from exc
    return values, count, bad, header


def _plain(cell: str) -> bool:
    return (
        len(cell) <= MAX_USER_ID
        and cell.isprintable()
        and " " not in cell
        and cell[0] not in _QUOTES
        and cell[-1] not in _QUOTES
    )


def _check_bad_share(
    source: str, bad: list[BadLine], *, lines: int, share: float, found: int
) -> None:
    listed = [Problem(f"line {b.line}", b.reason) for b in bad[:MAX_LISTED_BAD]]
    if found == 0:
        raise InvalidInput(source, [*listed, Problem("", "no user ids found")])
    # Allowed = the share rounded up, so a small file may always lose one line; the epsilon
    # keeps 0.07 * 100 (= 7.000000000000001 in floats) at 7.
    allowed = math.ceil(share * lines - 1e-9)
    if len(bad) > allowed:
        summary = (
            f"{len(bad)} of {lines} lines are bad "
            f"({100 * len(bad) / lines:.1f}% > allowed {100 * share:.1f}%)"
        )
        raise InvalidInput(source, [*listed, Problem("", summary)])
