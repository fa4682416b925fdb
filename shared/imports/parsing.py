"""Reading an uploaded CSV file: its rows as a stream, header checks, yes/no cells, and why a row is rejected."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

_TRUE, _FALSE = {"true", "1", "yes", "y", "ใช่"}, {"false", "0", "no", "n", "ไม่ใช่", ""}


@dataclass
class RowError:
    row: int  # 1-based; the header is row 1
    column: str | None
    message: str


def parse_flag(value: str) -> bool:
    """A yes/no cell: true/false, 1/0, yes/no, ใช่/ไม่ใช่; empty is false."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected true or false")


class Upload(io.BufferedReader):
    """An uploaded file's bytes that know how far `csv_rows` has read them: `position` is the number of bytes
    of the file's lines up to the end of the last row it has yielded (what it has read ahead is not counted);
    how an import's progress is measured."""

    position = 0


def _counted(text: io.TextIOWrapper, upload: Upload) -> Iterator[str]:
    """The text's lines, adding each line's bytes (UTF-8, as read) to the upload's position."""
    if upload.peek(len(codecs.BOM_UTF8)).startswith(codecs.BOM_UTF8):
        upload.position += len(codecs.BOM_UTF8)  # read with the first line, which does not show it
    for line in text:
        upload.position += len(line.encode())
        yield line


def csv_rows(stream: IO[bytes], header_errors: list[RowError], check_header: Callable[[list[str]], list[str]],
             ) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """The rows of a CSV byte stream (UTF-8, with or without BOM) as (row number, {column: cell}).

    Blank rows are skipped; a row the csv module cannot read (a cell over its 128 KiB limit) or whose cell
    count differs from the header's comes as a RowError, and the rows after it are read on. If
    `check_header` finds problems with the header they go to `header_errors` and no row is read. An `Upload`'s
    position moves on with the rows.
    """
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    lines: Iterable[str] = _counted(text, stream) if isinstance(stream, Upload) else text
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        header_errors.append(RowError(1, None, "the file is empty"))
        return
    problems = check_header(header)
    if problems:
        header_errors += [RowError(1, None, problem) for problem in problems]
        return
    row_no = 1
    while True:
        row_no += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over the csv module's limit: this row only, the reader goes on
            yield row_no, RowError(row_no, None, f"malformed CSV row: {exc}")
            continue
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield row_no, RowError(row_no, None, f"{len(cells)} cells, the header has {len(header)}")
            continue
        yield row_no, dict(zip(header, cells, strict=True))


def missing_columns(required: Sequence[str]) -> Callable[[list[str]], list[str]]:
    """A header check: all of `required` are there."""
    def check(header: list[str]) -> list[str]:
        missing = [c for c in required if c not in header]
        return [f"missing columns: {', '.join(missing)}"] if missing else []
    return check
