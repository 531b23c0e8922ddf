"""File drops: full snapshots a platform leaves in a landing folder (SFTP push, share).

What every file platform shares, so a file connector only declares its streams:

- `FileStream`: a snapshot stream read from files whose names match a pattern
  with a `date` group (`residents_(?P<date>\\d{8})\\.csv`), in one format.
- Complete-file detection: only names matching the pattern count. Platforms
  write under a temporary name and rename when done, so a half-written
  `….csv.part` never matches; for drops written in place, `min_age_seconds`
  leaves a file alone until it has stopped changing for that long. Other files
  in the folder (matching no stream's pattern) are reported as a warning.
- The record of processed files lives in the stream's cursor state (committed
  with the data, so it is never ahead of or behind what was loaded): file name,
  sha256 and what became of it. A file is read once; the same bytes sent again
  (same name, or the next day's name with yesterday's content) are skipped, and a
  file dated before the last one loaded is skipped as stale: loading an older
  snapshot after a newer one would undo the newer one.
- Each file is parsed once, by a pre-pass that keeps its records on disk (Arrow IPC
  in the system's temporary folder: bounded memory, whatever the file's size) for
  the read that yields them. The pre-pass finds what would make the file unusable
  before any of it is loaded: a file that cannot be read as a whole (bytes that
  are not text in its encoding, a truncated workbook, broken GeoJSON, a missing
  column) is rejected as a file, and a snapshot far smaller than the records now
  current is refused until an operator accepts it (`hub snapshot accept`).
  Either way nothing of it is loaded, it is recorded and skipped from then on,
  and the stream goes on with its next file. The pre-pass also finds keys held
  by two different records (`Extract.conflicting_keys`).
- A CSV row with the wrong number of fields is no reason to drop the file: it
  becomes a `RowReject` (quarantined) and the other rows load.
- Readers: GBK/GB 18030 CSV through pyarrow's streaming reader in bounded memory
  (a byte-order mark overrides the configured encoding; a field of any size is
  read: the block grows when a record outgrows it), xlsx through calamine (Rust:
  a sheet of text straight into Arrow by fastexcel, any other by calamine's Python
  binding; either holds the sheet's cells in memory while the file is read), GeoJSON
  feature by feature. Every value comes out as text, as the file holds it (a cell as the
  person sees it), for the conform step to judge.
- Reasons and warnings name the file and the line, never the content: they are
  shown to operators, and a row's content is a resident's personal data.

Each file becomes one snapshot: `Extract.snapshot_id` is its name and checksum,
and its last chunk is `snapshot_complete`, so the pipeline closes the records the
file no longer holds.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
import os
import re
import tempfile
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import duckdb
import fastexcel
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import python_calamine
from pydantic import Field, field_validator

from connectors.base import (
    Connector,
    Extract,
    ReadContext,
    RejectedFile,
    RowReject,
    SourceError,
    SourceSettings,
    Stream,
    as_text,
)

log = logging.getLogger(__name__)

FileFormat = Literal["csv", "xlsx", "geojson"]
# GeoJSON features: their properties are the fields, the geometry comes as JSON text.
GEOMETRY_FIELD = "geometry"
# Names a platform writes under before renaming, and lock/hidden files: never a drop.
TEMPORARY_PREFIXES = (".", "~$")
TEMPORARY_SUFFIXES = (".part", ".tmp", ".partial", ".filepart", ".swp")
# Unmatched files named one by one in a warning; the rest are counted.
MAX_NAMED_UNMATCHED = 20


class UnreadableFile(SourceError):
    """A file that cannot be read as a whole. The message names the file and the
    position, never the content."""


@dataclass(frozen=True)
class FileStream(Stream):
    """A snapshot stream delivered as one file per day (or per delivery)."""

    format: FileFormat = "csv"
    # Fields the connector adds to each record (not columns of the file).
    derived_fields: tuple[str, ...] = ()

    @property
    def file_fields(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.derived_fields)


def _known_encoding(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown text encoding {name!r}") from None
    return name


class FileDropSettings(SourceSettings):
    folder: str = Field(description="the landing folder the platform drops its files in")
    file_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="stream → regular expression a complete file's name matches in full, "
                    "with a group `date` (yyyyMMdd); unset streams use the connector's default",
    )
    csv_encoding: str = Field("gb18030", description="text encoding of CSV files (GB 18030 "
                              "reads GBK files too: it is a superset); a byte-order mark in a "
                              "file (UTF-8, UTF-16) wins")
    csv_encodings: dict[str, str] = Field(
        default_factory=dict,
        description="stream → text encoding of its CSV files, where it differs from csv_encoding")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)
    chunk_rows: int = Field(10_000, ge=1, description="records read from a file per piece")
    min_age_seconds: float = Field(
        0.0, ge=0, description="leave files younger than this alone (for drops written in place)")
    remembered_files: int = Field(
        400, ge=1, description="processed files remembered per stream; older ones are stale anyway")

    @field_validator("file_patterns")
    @classmethod
    def _has_date_group(cls, patterns: dict[str, str]) -> dict[str, str]:
        for stream, pattern in patterns.items():
            if "date" not in re.compile(pattern).groupindex:
                raise ValueError(f"file pattern of {stream!r} needs a group (?P<date>…)")
        return patterns

    @field_validator("csv_encoding")
    @classmethod
    def _encoding_exists(cls, name: str) -> str:
        return _known_encoding(name)

    @field_validator("csv_encodings")
    @classmethod
    def _encodings_exist(cls, encodings: dict[str, str]) -> dict[str, str]:
        for name in encodings.values():
            _known_encoding(name)
        return encodings


@dataclass(frozen=True)
class LandedFile:
    path: Path
    day: date
    # (inode, size, modified, changed) as listed, before any byte was read: the same
    # four on a later run mean the same bytes (a file written again, or another put in
    # its place, has a new change time, which no program sets: its checksum is taken
    # again). None: not known.
    signature: tuple[int, int, int, int] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def order(self) -> tuple[str, str]:
        return (self.day.isoformat(), self.name)


def is_temporary(name: str) -> bool:
    """A name under which a file is still being written, or a hidden or lock file."""
    return name.startswith(TEMPORARY_PREFIXES) or name.lower().endswith(TEMPORARY_SUFFIXES)


def _file_day(regex: re.Pattern[str], name: str) -> date | None:
    m = regex.fullmatch(name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group("date"), "%Y%m%d").date()
    except ValueError:
        return None


def landed_files(folder: Path, pattern: str, min_age_seconds: float = 0.0) -> list[LandedFile]:
    """Complete files in `folder` whose names match `pattern`, oldest first."""
    if not folder.is_dir():
        raise SourceError(f"landing folder {folder} does not exist or is not a folder")
    regex = re.compile(pattern)
    now = folder_now(folder)
    found = []
    for path in folder.iterdir():
        if not regex.fullmatch(path.name) or not path.is_file():
            continue
        day = _file_day(regex, path.name)
        if day is None:
            log.warning("%s: no date in its name; ignored", path.name)
            continue
        stat = path.stat()
        if min_age_seconds and now - stat.st_mtime < min_age_seconds:
            log.info("%s: changed less than %.0fs ago; left for the next run", path.name,
                     min_age_seconds)
            continue
        # A file changed just now may change again within the file system's time step
        # and keep its change time: its signature says nothing yet (as git's index).
        settled = now - stat.st_ctime > SETTLED_S
        found.append(LandedFile(path, day, (stat.st_ino, stat.st_size, stat.st_mtime_ns,
                                            stat.st_ctime_ns) if settled else None))
    return sorted(found, key=lambda f: f.order)


# How long ago a file must have last changed for its signature to vouch for its bytes.
SETTLED_S = 2.0


def folder_now(folder: Path) -> float:
    """Now as the landing folder's file system tells time, for comparing with its files'
    modification times: an SFTP or NFS server keeps its own clock, and a skew of
    minutes would make a half-written file look settled. A folder the hub may not
    write to falls back to this machine's clock."""
    probe = folder / f".hub-clock-{uuid.uuid4().hex}"
    try:
        probe.touch()
        try:
            return probe.stat().st_mtime
        finally:
            probe.unlink()
    except OSError:
        return time.time()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ------------------------------------------------------------------------ readers


def _text_table(fields: Sequence[str], columns: Mapping[str, list[str | None]]) -> pa.Table:
    return pa.table({f: pa.array(columns[f], pa.string()) for f in fields})


def _missing(path: Path, fields: Sequence[str], header: Sequence[str]) -> None:
    # The header is not quoted back: a file without one has a person's record there.
    missing = [f for f in fields if f not in header]
    if not header:
        raise UnreadableFile(f"{path.name}: the file is empty (no header row)")
    if missing:
        raise UnreadableFile(f"{path.name}: column(s) {', '.join(missing)} missing from its "
                             f"header row ({len(header)} columns)")


# CSV: pyarrow's block must hold a whole record; it starts at this and grows.
CSV_BLOCK_BYTES = 1 << 20
MAX_CSV_BLOCK_BYTES = 1 << 30
# Byte-order marks, longest first (a UTF-32 LE mark starts like a UTF-16 LE one).
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def text_encoding(path: Path, declared: str) -> tuple[str, str]:
    """(encoding, where it comes from): the file's byte-order mark's, else `declared`."""
    with open(path, "rb") as f:
        head = f.read(4)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding, "its byte-order mark"
    return declared, "configured"


def locate_decode_error(path: Path, encoding: str) -> tuple[int | None, int] | None:
    """(line, byte offset) of the first bytes of `path` that are not `encoding` text
    (line None where lines cannot be told apart without decoding), or None."""
    if encoding.lower().replace("_", "-") in ("utf-8-sig", "utf8-sig"):
        encoding = "utf-8"  # the mark is valid UTF-8, and it would not encode alone
    line_based = "\n,".encode(encoding) == b"\n,"
    with open(path, "rb") as f:
        if line_based:
            # ASCII-compatible encodings (GBK, GB 18030, UTF-8): no multibyte character
            # holds a newline byte, so each line decodes on its own.
            offset = 0
            for number, line in enumerate(f, 1):
                try:
                    line.decode(encoding)
                except UnicodeDecodeError as exc:
                    return number, offset + exc.start
                offset += len(line)
            return None
        decoder = codecs.getincrementaldecoder(encoding)()
        offset = 0
        while block := f.read(1 << 20):
            buffered = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return None, offset - buffered + exc.start
            offset += len(block)
        buffered = len(decoder.getstate()[0])
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return None, offset - buffered + exc.start
    return None


@dataclass(frozen=True)
class InvalidCsvRow:
    """A CSV record with the wrong number of fields, as pyarrow found it. `text` is the
    row's content: payload only, never for a message."""

    expected: int
    actual: int
    text: str


@dataclass(frozen=True)
class MalformedRow:
    """Where a CSV record with the wrong number of fields is: its first line, and how
    many good records come before it (which chunk it belongs with)."""

    line: int | None
    fields: int
    good_before: int | None


def _arrow_summary(exc: Exception) -> str:
    # pyarrow's CSV errors end in the row's text ("… got 13: 张三,…"): keep the kind only.
    return str(exc).split(":", 1)[0].strip()[:80] or type(exc).__name__


class CsvFile:
    """One CSV file, ready to be read as often as needed: its encoding decided (a
    byte-order mark wins over the configured one), its header read and checked.

    The pyarrow block a record must fit in grows when a record outgrows it, and
    stays grown for the next read of the same file.
    """

    def __init__(self, path: Path, fields: Sequence[str], *, encoding: str,
                 delimiter: str = ",", block_size: int = CSV_BLOCK_BYTES):
        self.path = path
        self.fields = tuple(fields)
        self.delimiter = delimiter
        self.encoding, self.encoding_from = text_encoding(path, encoding)
        self.block_size = block_size
        self.header = self._read_header()
        _missing(path, self.fields, self.header)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def _arrow_encoding(self) -> str:
        # pyarrow reads UTF-8 itself (and skips the mark); anything else it transcodes.
        return "utf8" if self.encoding == "utf-8-sig" else self.encoding

    def _text(self, raw: io.BufferedReader) -> io.TextIOWrapper:
        return io.TextIOWrapper(raw, encoding=self.encoding, newline="")

    def _read_header(self) -> list[str]:
        try:
            with open(self.path, "rb") as raw:
                first = next(csv.reader(self._text(raw), delimiter=self.delimiter), [])
        except UnicodeDecodeError:
            raise UnreadableFile(self.decode_error()) from None
        except csv.Error as exc:  # its messages name the problem, not the content
            raise UnreadableFile(f"{self.name}: header row unreadable as CSV ({exc})") from None
        return [h.strip() for h in first]

    def decode_error(self) -> str:
        """Why the file is not text: where the first bad bytes are."""
        where = locate_decode_error(self.path, self.encoding)
        what = f"{self.name}: not valid {self.encoding} text ({self.encoding_from})"
        if where is None:
            return what
        line, offset = where
        at = f"line {line}, byte {offset}" if line is not None else f"byte {offset}"
        return f"{what} at {at}; check the file's encoding (csv_encodings sets it per stream)"

    def _max_block(self) -> int:
        # Transcoded to UTF-8, text grows by half at most: four times the file holds any record.
        return min(MAX_CSV_BLOCK_BYTES, max(CSV_BLOCK_BYTES, 4 * self.path.stat().st_size))

    def chunks(self, chunk_rows: int,
               on_invalid_row: Callable[[InvalidCsvRow], None] | None = None
               ) -> Iterator[pa.Table]:
        """The file as text tables of `fields`, about `chunk_rows` rows at a time.

        Rows with the wrong number of fields go to `on_invalid_row` (by default they
        are logged, without their content, and skipped), in file order. Raises
        `UnreadableFile` when the file as a whole cannot be read.
        """
        delivered = 0  # rows yielded: a read restarted with a bigger block skips them
        reported = 0  # invalid rows passed on: not again after a restart
        seen = [0]  # invalid rows met by the current attempt

        def handle(row: Any) -> str:
            nonlocal reported
            seen[0] += 1
            if seen[0] > reported:
                reported = seen[0]
                invalid = InvalidCsvRow(row.expected_columns, row.actual_columns, row.text)
                if on_invalid_row is None:
                    log.warning("%s: a row with %d fields where the header has %d; skipped",
                                self.name, invalid.actual, invalid.expected)
                else:
                    on_invalid_row(invalid)
            return "skip"

        while True:
            seen[0] = 0
            skip = delivered
            try:
                reader = pacsv.open_csv(
                    self.path,
                    # One thread: invalid rows are reported strictly in file order (the
                    # n-th is matched with the n-th the pre-pass located).
                    read_options=pacsv.ReadOptions(
                        encoding=self._arrow_encoding, block_size=self.block_size,
                        column_names=self.header, skip_rows=1, use_threads=False),
                    parse_options=pacsv.ParseOptions(
                        delimiter=self.delimiter, newlines_in_values=True,
                        invalid_row_handler=handle),
                    convert_options=pacsv.ConvertOptions(
                        column_types={h: pa.string() for h in self.header},
                        include_columns=list(self.fields),
                        strings_can_be_null=False, quoted_strings_can_be_null=False),
                )
                pending: list[pa.RecordBatch] = []
                size = 0
                for batch in reader:
                    if skip:
                        if batch.num_rows <= skip:
                            skip -= batch.num_rows
                            continue
                        batch, skip = batch.slice(skip), 0
                    pending.append(batch)
                    size += batch.num_rows
                    while size >= chunk_rows:
                        table = pa.Table.from_batches(pending)
                        rest = table.slice(chunk_rows)
                        pending, size = rest.to_batches(), rest.num_rows
                        delivered += chunk_rows
                        yield table.slice(0, chunk_rows).combine_chunks()
                if size:
                    delivered += size
                    yield pa.Table.from_batches(pending).combine_chunks()
                return
            except UnicodeDecodeError:  # raised by the transcoding of a non-UTF-8 file
                raise UnreadableFile(self.decode_error()) from None
            except pa.ArrowInvalid as exc:
                message = str(exc)
                if "straddl" in message or "block size" in message:
                    limit = self._max_block()
                    if self.block_size >= limit:
                        raise UnreadableFile(
                            f"{self.name}: a record longer than {limit >> 20} MiB (an unclosed "
                            "quote?)") from None
                    self.block_size = min(self.block_size * 4, limit)
                    log.info("%s: a record larger than the read block; reading again with "
                             "blocks of %d MiB", self.name, self.block_size >> 20)
                    continue
                if "UTF8" in message or "UTF-8" in message:
                    raise UnreadableFile(self.decode_error()) from None
                raise UnreadableFile(
                    f"{self.name}: unreadable as CSV ({_arrow_summary(exc)})") from None

    def malformed_lines(self) -> tuple[list[MalformedRow], int]:
        """Each record whose number of fields differs from the header's, in file order,
        and the number of good records (pyarrow does not know lines when values may
        hold newlines; Python's csv module counts them)."""
        limit = csv.field_size_limit()
        csv.field_size_limit(2**31 - 1)
        try:
            found = []
            good = 0
            with open(self.path, "rb") as raw:
                reader = csv.reader(self._text(raw), delimiter=self.delimiter)
                next(reader, None)
                last = reader.line_num
                width = len(self.header)
                for record in reader:
                    if len(record) == width:
                        good += 1
                    elif record:
                        found.append(MalformedRow(last + 1, len(record), good))
                    last = reader.line_num
            return found, good
        finally:
            csv.field_size_limit(limit)

    def row_payload(self, text: str) -> dict[str, str | None]:
        """An invalid row's fields under the header's names (extra fields numbered)."""
        try:
            values = next(csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter))
        except (csv.Error, StopIteration):
            return {"_text": text}
        payload: dict[str, str | None] = {}
        for i, value in enumerate(values):
            name = self.header[i] if i < len(self.header) else ""
            payload[name if name and name not in payload else f"_field_{i + 1}"] = value
        return payload


def read_csv(path: Path, fields: Sequence[str], *, encoding: str, chunk_rows: int,
             delimiter: str = ",",
             on_invalid_row: Callable[[InvalidCsvRow], None] | None = None
             ) -> Iterator[pa.Table]:
    """A CSV file as text tables of `fields`, about `chunk_rows` rows at a time."""
    yield from CsvFile(path, fields, encoding=encoding, delimiter=delimiter).chunks(
        chunk_rows, on_invalid_row)


def read_xlsx(path: Path, fields: Sequence[str], *, chunk_rows: int,
              sheet: str | None = None) -> Iterator[pa.Table]:
    """The first (or named) worksheet of a workbook, header in row 1, every cell as the text
    `_cell_text` makes of what openpyxl reads from it.

    A sheet of text cells only (as the platforms write them) is read by fastexcel: calamine
    underneath, the cells straight into Arrow columns, about twice as fast as calamine's
    Python binding, which reads any other sheet (its numbers, dates and booleans are made
    text cell by cell). Either holds the sheet's cells in memory while the file is read.
    """
    with open(path, "rb") as f:  # a missing file is FileNotFoundError, as for any reader
        content = f.read()
    cells = _xlsx_text_columns(content, sheet)
    if cells is None:
        yield from _calamine_xlsx(path, content, fields, chunk_rows=chunk_rows, sheet=sheet)
        return
    header = [(column[0].as_py() or "").strip() for column in cells]
    _missing(path, fields, header)
    rows = [column[1:] for column in cells]
    table = pa.table({f: rows[header.index(f)] for f in fields})
    # Excel keeps formatted empty rows: a row whose longest cell is empty is no record.
    longest = pc.max_element_wise(*[pc.binary_length(column) for column in rows])
    filled = pc.fill_null(pc.greater(longest, 0), False)
    if not pc.all(filled).as_py():
        table = table.filter(filled)
    for start in range(0, table.num_rows, chunk_rows):
        chunk = table.slice(start, chunk_rows)
        yield pa.table({f: _nulled(chunk[f]) for f in fields})


def _xlsx_text_columns(content: bytes, sheet: str | None) -> list[pa.Array] | None:
    """The sheet's columns from column A, row 1 (the header) on, as fastexcel reads them,
    when every cell is text or empty. None when one is not (a number, a date, a boolean,
    whose text fastexcel writes otherwise), when fastexcel finds no cell (the first sheet
    may be a chart sheet) or cannot read the file: calamine's binding reads that one as it
    always did, and says so in the same words when the file is broken."""
    if _values_up_front(content):
        return None
    try:
        # Every row from row 1 (header_row=None, skip_rows=0); each column's type taken from
        # all its cells, a column holding two types an error (strict).
        ws = fastexcel.read_excel(content).load_sheet(
            sheet or 0, header_row=None, skip_rows=0, schema_sample_rows=None,
            dtype_coercion="strict")
    except fastexcel.FastExcelError:
        return None
    found = ws.selected_columns
    if not found or any(c.dtype != "string" for c in found):
        return None
    cells = ws.to_arrow()
    # The range starts at the first column holding a cell: put the empty columns before it
    # back, so positions are the sheet's own.
    return [pa.nulls(cells.num_rows, pa.string())] * found[0].absolute_index + cells.columns


# A cell holding something other than text: a start tag without a text type (t="s" shared,
# "inlineStr", "str" a formula's text; "e", an error, is read as empty), then its value or
# formula.
_VALUE_CELL = re.compile(rb'<c\s(?![^>]*\bt="(?:s|inlineStr|str|e)")[^>]*>\s*<[fv][\s>/]')


def _values_up_front(content: bytes) -> bool:
    """Whether a worksheet's first cells (the first 64 KiB of its XML) hold a number, a
    date or a boolean. Such a sheet goes straight to calamine's binding: fastexcel would
    read it whole only to find that out, and the read would take half as long again."""
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as package:
            for name in package.namelist():
                if name.startswith("xl/worksheets/") and name.endswith(".xml"):
                    with package.open(name) as part:
                        if _VALUE_CELL.search(part.read(1 << 16)):
                            return True
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError):
        pass  # a broken workbook: the readers say what is wrong with it
    return False


def _calamine_xlsx(path: Path, content: bytes, fields: Sequence[str], *, chunk_rows: int,
                   sheet: str | None) -> Iterator[pa.Table]:
    """`read_xlsx` through calamine's Python binding: any sheet, the rows becoming Python
    values a chunk at a time."""
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(content))
    try:
        if sheet:
            ws = workbook.get_sheet_by_name(sheet)
        else:
            names = [m.name for m in workbook.sheets_metadata
                     if m.typ == python_calamine.SheetTypeEnum.WorkSheet]
            if not names:
                raise UnreadableFile(f"{path.name}: the workbook holds no worksheet")
            ws = workbook.get_sheet_by_name(names[0])
        # calamine's rows begin at row 1 but at the first column holding a cell: put the
        # columns before it back, so positions are the sheet's own (as openpyxl gives them).
        width = ws.end[1] + 1 if ws.end else 0
        rows = ws.iter_rows()
        first = next(rows, [])
        lead = [""] * (width - len(first))
        header = [(_calamine_text(v) or "").strip() for v in lead + first]
        _missing(path, fields, header)
        positions = [header.index(f) for f in fields]
        batch: list[list[Any]] = []
        for row in rows:
            if row.count("") == len(row):
                continue  # Excel keeps formatted empty rows; calamine reads them as ""
            batch.append(lead + row if lead else row)
            if len(batch) == chunk_rows:
                yield _xlsx_table(fields, positions, batch)
                batch = []
        if batch:
            yield _xlsx_table(fields, positions, batch)
    finally:
        workbook.close()


def _xlsx_table(fields: Sequence[str], positions: Sequence[int],
                rows: list[list[Any]]) -> pa.Table:
    columns = list(zip(*rows, strict=True))
    return pa.table({f: _xlsx_column(columns[i]) for f, i in zip(fields, positions, strict=True)})


def _xlsx_column(values: Sequence[Any]) -> pa.Array:
    """A column's cells as text. A column of text only (the usual) is taken as it is by
    Arrow, its empty cells ("" from calamine) made null; any other goes cell by cell."""
    try:
        text = pa.array(values, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        return pa.array([_calamine_text(v) for v in values], pa.string())
    return _nulled(text)


def _nulled(text: pa.Array) -> pa.Array:
    """Text cells with the empty ones made null, as openpyxl reads them."""
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _calamine_text(value: Any) -> str | None:
    """A cell as calamine reads it, as the text `_cell_text` makes of openpyxl's value.

    calamine reads an empty cell as "" (openpyxl: None), numbers as floats, and a
    date-formatted number at midnight as a date (openpyxl: a datetime, 00:00:00).
    """
    if value.__class__ is str:
        return value or None
    if value.__class__ is date:
        return _cell_text(datetime.combine(value, datetime.min.time()))
    return _cell_text(value)


def _cell_text(value: Any) -> str | None:
    """A cell as the text a person sees: 1201 not 1201.0; None, text, booleans, numbers
    and dates as an API's values read (as_text); other cell types (time, timedelta),
    which as_text would write as JSON, as str() writes them."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if value is None or isinstance(value, str | int | float | Decimal | date):
        return as_text(value)
    return str(value)


def read_geojson(path: Path, fields: Sequence[str], *, chunk_rows: int) -> Iterator[pa.Table]:
    """Features of a FeatureCollection: their properties, and the geometry as JSON text."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            collection = json.load(f)
    except json.JSONDecodeError as exc:  # msg, line and column: no content
        raise UnreadableFile(f"{path.name}: not a GeoJSON file ({exc.msg} at line {exc.lineno},"
                             f" column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{path.name}: not a GeoJSON file (not UTF-8 text at byte "
                             f"{exc.start})") from None
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list):
        raise UnreadableFile(f"{path.name}: not a GeoJSON FeatureCollection")
    for number, feature in enumerate(features, 1):
        if not isinstance(feature, dict) or not isinstance(feature.get("properties") or {}, dict):
            raise UnreadableFile(f"{path.name}: feature {number} is not a GeoJSON feature")
    for start in range(0, len(features), chunk_rows):
        columns: dict[str, list[str | None]] = {f: [] for f in fields}
        for feature in features[start:start + chunk_rows]:
            props = feature.get("properties") or {}
            for name in fields:
                value = feature.get(GEOMETRY_FIELD) if name == GEOMETRY_FIELD else props.get(name)
                columns[name].append(None if value is None else value if isinstance(value, str)
                                     else json.dumps(value, ensure_ascii=False))
        yield _text_table(fields, columns)


# Errors whose messages say what is wrong and where, never what a file holds.
_SAFE_MESSAGES: tuple[type[BaseException], ...] = (zipfile.BadZipFile, zlib.error, EOFError,
                                                   SyntaxError,  # xml ParseError is one
                                                   python_calamine.ZipError)


def _unreadable(name: str, file_format: str, exc: Exception) -> UnreadableFile:
    if isinstance(exc, UnreadableFile):
        return exc
    detail = type(exc).__name__
    if isinstance(exc, _SAFE_MESSAGES) and str(exc):
        detail = f"{detail}: {str(exc)[:200]}"
    return UnreadableFile(f"{name}: not a readable {file_format} file ({detail})")


def _guarded(name: str, file_format: str,
             read: Callable[[], Iterator[pa.Table]]) -> Iterator[pa.Table]:
    """`read()`'s chunks, any error of the reader turned into `UnreadableFile`.

    A missing file or a failing disk is no verdict on the file: those fail the run,
    which tries again next time.
    """
    try:
        chunks = iter(read())
    except (OSError, MemoryError):
        raise
    except Exception as exc:
        raise _unreadable(name, file_format, exc) from None
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        except (OSError, MemoryError):
            raise
        except Exception as exc:
            raise _unreadable(name, file_format, exc) from None
        yield chunk


# ------------------------------------------------------------------ the pre-pass


def row_hashes(table: pa.Table, fields: Sequence[str]) -> pa.Array:
    """A 64-bit hash of each row's values of `fields` (null and empty told apart).

    DuckDB hashes the Arrow columns as they are, in C++ (0.16 s for 400 k rows of 13
    fields, where hashing them as Python strings took 0.8 s). Its hash may change with
    its version: these hashes are compared within a file, and as the digests of
    snapshot records (hub.unchanged), where a changed hash only makes a record look
    changed once, never unchanged. Keys stored across runs are hashed otherwise
    (warehouse.record_digest.key_hashes).
    """
    if table.num_rows == 0:
        return pa.array([], pa.uint64())
    columns = pa.table({f"c{i}": table[f] for i, f in enumerate(fields)})
    with _hashing().cursor() as con:  # a cursor a call: the pipeline hashes in two threads
        hashed = con.from_arrow(columns).project(
            f"hash({', '.join(columns.column_names)})").fetch_arrow_table()
    return hashed.column(0).combine_chunks()


_HASHERS: dict[int, duckdb.DuckDBPyConnection] = {}


def _hashing() -> duckdb.DuckDBPyConnection:
    """This process's in-memory DuckDB (a new one costs 30 ms, a cursor of it nothing).
    One per process id: a database made before a fork (Airflow forks its task
    processes) is not used in the child, whose copy has none of its threads."""
    pid = os.getpid()
    if pid not in _HASHERS:  # the parent's is kept, never closed here (nor used)
        _HASHERS[pid] = duckdb.connect()
    return _HASHERS[pid]


class KeyScan:
    """The keys of a snapshot and a hash of each record, in bounded memory (a key, its
    hash and a 64-bit hash of the row, as Arrow and numpy arrays): how many keys it
    holds, and which keys it holds with two or more different records. Identical
    repeated rows are one."""

    def __init__(self, key_field: str, fields: Sequence[str]):
        self.key_field = key_field
        self.fields = tuple(fields)
        self.rows = 0
        self._keys: list[pa.Array] = []
        self._key_hashes: list[np.ndarray] = []
        self._hashes: list[np.ndarray] = []

    def add(self, records: pa.Table) -> None:
        self.rows += records.num_rows
        if not records.num_rows:
            return
        keys = records[self.key_field]
        # The column as it is (no copy): for a derived key, the read reuses it.
        keys = (keys.chunk(0) if keys.num_chunks == 1 else keys.combine_chunks()).cast(
            pa.string())
        # Null and blank keys are no key: left out here.
        present = pc.fill_null(pc.not_equal(keys, ""), False)
        keys = keys.filter(present)
        self._keys.append(keys)
        self._key_hashes.append(row_hashes(pa.table({"k": keys}), ["k"]).to_numpy())
        self._hashes.append(row_hashes(records.filter(present), self.fields).to_numpy())

    def result(self) -> tuple[int, dict[str, int]]:
        """(distinct keys, keys held by two or more different records, each with a
        digest of its records' hashes in any order).

        Sorted by (key hash, row hash) with numpy; the few keys whose hash comes with
        two row hashes are then told apart by their text, so two keys sharing a
        64-bit hash are never taken for one key held twice."""
        if not self._keys:
            return 0, {}
        key_hashes = np.concatenate(self._key_hashes)
        hashes = np.concatenate(self._hashes)
        order = np.lexsort((hashes, key_hashes))
        k, h = key_hashes[order], hashes[order]
        if not len(k):
            return 0, {}
        pair_starts = np.ones(len(k), dtype=bool)
        pair_starts[1:] = (k[1:] != k[:-1]) | (h[1:] != h[:-1])
        distinct = k[pair_starts]
        keys = int((distinct[1:] != distinct[:-1]).sum()) + 1
        suspects = np.unique(distinct[1:][distinct[1:] == distinct[:-1]])
        if not len(suspects):
            return keys, {}
        at = np.isin(key_hashes, suspects)
        pairs = pa.table({"k": pa.chunked_array(self._keys).filter(pa.array(at)),
                          "h": pa.array(hashes[at])})
        per_key = pairs.group_by(["k", "h"]).aggregate([]).group_by("k").aggregate(
            [("h", "list")])
        return keys, {key: _records_digest(held) for key, held in zip(
            per_key["k"].to_pylist(), per_key["h_list"].to_pylist(), strict=True)
            if len(held) > 1}


def _records_digest(hashes: Sequence[int]) -> int:
    """One 64-bit digest (signed) of a set of row hashes, whatever their order."""
    ordered = np.sort(np.asarray(hashes, dtype=np.uint64))
    return int.from_bytes(hashlib.blake2b(ordered.tobytes(), digest_size=8).digest(), "big",
                          signed=True)


# ----------------------------------------------------------- processed-files record


@dataclass
class ProcessedFiles:
    """A stream's record of the files it has dealt with: its cursor state.

    `files`: name → {"sha256", "date", "outcome", "rows", the file's "signature" when
    read, and "reason" where one is due}; outcomes: loaded, identical, stale, rejected (unreadable) and refused (a
    snapshot too small, until accepted); `last`: the name of the last file loaded,
    whose date and bytes new files are compared with.
    """

    files: dict[str, dict[str, Any]]
    last: str | None

    @classmethod
    def from_state(cls, state: Mapping[str, Any] | None) -> ProcessedFiles:
        state = state or {}
        return cls(dict(state.get("files") or {}), state.get("last"))

    def to_state(self, keep: int) -> dict[str, Any]:
        names = sorted(self.files, key=lambda n: (self.files[n].get("date", ""), n))[-keep:]
        return {"files": {n: self.files[n] for n in names}, "last": self.last}

    def seen(self, name: str, sha256: str) -> bool:
        return self.files.get(name, {}).get("sha256") == sha256

    def known_sha256(self, landed: LandedFile) -> str | None:
        """The checksum noted for the file if it is as it was then (its signature the
        same): a landing folder keeps days of files of hundreds of MB, which each run
        would otherwise read whole again to find them dealt with."""
        noted = self.files.get(landed.name, {})
        if landed.signature is None or noted.get("signature") != list(landed.signature):
            return None
        return noted.get("sha256")

    def outcome(self, name: str) -> str | None:
        return self.files.get(name, {}).get("outcome")

    def verdict(self, landed: LandedFile, sha256: str) -> str:
        """load, identical (the same bytes as the last file loaded) or stale."""
        last = self.files.get(self.last) if self.last else None
        if last is None:
            return "load"
        if last["sha256"] == sha256:
            return "identical"
        if (landed.day.isoformat(), landed.name) < (last["date"], self.last or ""):
            return "stale"
        return "load"

    def note(self, landed: LandedFile, sha256: str, outcome: str, rows: int = 0,
             reason: str | None = None) -> None:
        self.files[landed.name] = {"sha256": sha256, "date": landed.day.isoformat(),
                                   "outcome": outcome, "rows": rows}
        if landed.signature is not None:
            self.files[landed.name]["signature"] = list(landed.signature)
        if reason is not None:
            self.files[landed.name]["reason"] = reason
        if outcome == "loaded":
            self.last = landed.name


# ---------------------------------------------------------------------- connector


class Spool:
    """A file's records as the pre-pass read them (derived fields added), kept for the
    read that yields them in an Arrow IPC file in the system's temporary folder: the
    file is parsed, decoded and keyed once (reading a 237 MB GB 18030 CSV and hashing
    its 1.34 M ID numbers a second time cost a daily run 10 s), in bounded memory
    (the read maps the spool; the OS pages it). The spool is deleted when read or
    discarded; the read yields the tables as they were added."""

    def __init__(self) -> None:
        self._path: str | None = None
        self._sink: pa.NativeFile | None = None
        self._writer: pa.ipc.RecordBatchFileWriter | None = None
        self._batches: list[int] = []  # record batches per table added

    def add(self, table: pa.Table) -> None:
        if self._writer is None:
            fd, self._path = tempfile.mkstemp(prefix="hub-spool-", suffix=".arrow")
            os.close(fd)
            self._sink = pa.OSFile(self._path, "wb")
            self._writer = pa.ipc.new_file(self._sink, table.schema)
        batches = table.to_batches()
        for batch in batches:
            self._writer.write_batch(batch)
        self._batches.append(len(batches))

    def tables(self) -> Iterator[pa.Table]:
        """The tables added, in order (the spool deleted once open: the map stays)."""
        if self._writer is None or self._path is None:
            return
        self._close()
        with pa.memory_map(self._path) as source:
            reader = pa.ipc.open_file(source)
            self.discard()
            at = 0
            for count in self._batches:
                yield pa.Table.from_batches(
                    [reader.get_batch(i) for i in range(at, at + count)], reader.schema)
                at += count

    def discard(self) -> None:
        self._close()
        if self._path is not None:
            Path(self._path).unlink(missing_ok=True)
            self._path = None

    def _close(self) -> None:
        if self._writer is not None and self._sink is not None and not self._sink.closed:
            self._writer.close()
            self._sink.close()


@dataclass(frozen=True)
class PreparedFile:
    """A file through its pre-pass: what the read that yields its records needs."""

    rows: int
    keys: int
    conflicting_keys: dict[str, int]
    records: Spool
    # CSV: the file as the pre-pass opened it (its header and encoding settled), its
    # rows with the wrong number of fields in file order, and where each one is.
    csv_file: CsvFile | None = None
    invalid: tuple[InvalidCsvRow, ...] = ()
    malformed: tuple[MalformedRow, ...] = ()


class FileDropConnector(Connector):
    """A connector whose `FileStream`s are read from a landing folder."""

    settings: FileDropSettings
    # stream → default file-name pattern; the sources file can override each.
    default_patterns: dict[str, str] = {}

    def pattern(self, stream: FileStream) -> str:
        return self.settings.file_patterns.get(stream.name) or self.default_patterns[stream.name]

    def file_streams(self) -> list[FileStream]:
        return [s for s in self.streams if isinstance(s, FileStream)]

    def csv_encoding(self, stream: FileStream) -> str:
        """The configured encoding of the stream's CSV files (a byte-order mark wins)."""
        return self.settings.csv_encodings.get(stream.name) or self.settings.csv_encoding

    def add_fields(self, stream: FileStream, records: pa.Table) -> pa.Table:
        """Append `stream.derived_fields` to records read from a file (none by default).

        Called on each chunk of the pre-pass; the read that yields the records reuses
        the columns it added (a function of each row alone)."""
        return records

    def read_file(self, stream: FileStream, path: Path, *, csv_file: CsvFile | None = None,
                  on_invalid_row: Callable[[InvalidCsvRow], None] | None = None
                  ) -> Iterator[pa.Table]:
        """A landed file's records in chunks of text (`csv_file`: the file as opened before)."""
        s = self.settings
        fields = stream.file_fields
        if stream.format == "csv":
            source = csv_file or CsvFile(path, fields, encoding=self.csv_encoding(stream),
                                         delimiter=s.csv_delimiter)
            return source.chunks(s.chunk_rows, on_invalid_row)
        if stream.format == "xlsx":
            return read_xlsx(path, fields, chunk_rows=s.chunk_rows)
        return read_geojson(path, fields, chunk_rows=s.chunk_rows)

    # ---- the landing folder -----------------------------------------------------

    def preflight(self) -> None:
        folder = Path(self.settings.folder)
        if not folder.is_dir():
            raise SourceError(
                f"{self.source.name}: landing folder {folder} does not exist; set"
                f" sources.{self.source.name}.settings.folder in the sources file to where the"
                " platform drops its files (make demo runs with its own simulators' folders)")

    def unmatched_files(self) -> list[str]:
        """Files in the landing folder that no stream reads (temporary names aside)."""
        folder = Path(self.settings.folder)
        if not folder.is_dir():
            return []
        regexes = [re.compile(self.pattern(s)) for s in self.file_streams()]
        return sorted(
            p.name for p in folder.iterdir()
            if not is_temporary(p.name) and p.is_file()
            and all(_file_day(r, p.name) is None for r in regexes))

    def folder_warnings(self) -> list[str]:
        names = self.unmatched_files()
        warnings = [f"{n}: in the landing folder but matches no stream's file name pattern "
                    "(with a valid date); not read" for n in names[:MAX_NAMED_UNMATCHED]]
        if len(names) > MAX_NAMED_UNMATCHED:
            warnings.append(f"{len(names) - MAX_NAMED_UNMATCHED} more files in the landing "
                            "folder match no stream's file name pattern; not read")
        return warnings

    # ---- reading ----------------------------------------------------------------

    def extract_files(self, stream: FileStream, state: Mapping[str, Any] | None,
                      context: ReadContext) -> Iterator[Extract]:
        """Every new complete file, oldest first, each as one snapshot, or rejected."""
        record = ProcessedFiles.from_state(state)
        keep = self.settings.remembered_files
        # Files no stream reads are reported once per run: with the first file stream.
        first = self.file_streams()
        warnings = self.folder_warnings() if first and first[0].name == stream.name else []
        queue = self._new_files(stream, record, context)
        position = 0

        def note_skips() -> None:
            # Files skipped up to the next one to read are decided already: their notes
            # ride on the extract at hand instead of costing a batch of their own.
            nonlocal position
            while position < len(queue):
                landed, sha256 = queue[position]
                verdict = record.verdict(landed, sha256)
                if verdict == "load":
                    return
                if verdict == "identical":  # a resend, or a day without changes
                    log.info("%s: the same bytes as %s; skipped", landed.name, record.last)
                else:
                    log.warning("%s: older than %s, which is loaded already; skipped as stale",
                                landed.name, record.last)
                record.note(landed, sha256, verdict)
                position += 1

        note_skips()
        carried = not queue  # whether the last extract holds every decision in `record`
        while position < len(queue):
            landed, sha256 = queue[position]
            position += 1
            carried = False
            for extract in self._file(stream, landed, sha256, record, keep, context, note_skips):
                if warnings:
                    extract.warnings[:0] = warnings
                    warnings = []
                carried = extract.snapshot_complete or bool(extract.rejected_files)
                yield extract
        if not carried or warnings:
            # Nothing read, but the decisions are committed like any cursor.
            yield Extract(_empty(stream.fields), record.to_state(keep), warnings=warnings)

    def _new_files(self, stream: FileStream, record: ProcessedFiles,
                   context: ReadContext) -> list[tuple[LandedFile, str]]:
        """(file, sha256) of each file not dealt with yet, oldest first."""
        found = []
        for landed in landed_files(Path(self.settings.folder), self.pattern(stream),
                                   self.settings.min_age_seconds):
            try:
                sha256 = record.known_sha256(landed) or sha256_of(landed.path)
            except FileNotFoundError:
                log.warning("%s vanished before it was read; skipped", landed.name)
                continue
            if record.seen(landed.name, sha256):
                accepted = f"{landed.name}#{sha256}" in context.accepted_snapshots
                if not (record.outcome(landed.name) == "refused" and accepted):
                    continue
                log.info("%s: refused before, accepted by an operator since; read again",
                         landed.name)
            found.append((landed, sha256))
        return found

    def prepare(self, stream: FileStream, landed: LandedFile) -> PreparedFile:
        """The pre-pass over a file: read it all, its records spooled (`Spool`) with
        their derived fields, and keys and row hashes kept.

        Raises `UnreadableFile` when the file cannot be read as a whole, before any
        record of it is yielded.
        """
        name, file_format = landed.name, stream.format.upper()
        csv_file = None
        if stream.format == "csv":
            try:
                csv_file = CsvFile(landed.path, stream.file_fields,
                                   encoding=self.csv_encoding(stream),
                                   delimiter=self.settings.csv_delimiter)
            except (OSError, MemoryError):
                raise
            except Exception as exc:
                raise _unreadable(name, file_format, exc) from None
        invalid: list[InvalidCsvRow] = []
        scan = KeyScan(stream.key_field, stream.file_fields)
        spool = Spool()
        try:
            for chunk in _guarded(name, file_format, lambda: self.read_file(
                    stream, landed.path, csv_file=csv_file, on_invalid_row=invalid.append)):
                added = self.add_fields(stream, chunk)
                scan.add(added)
                spool.add(added)
        except BaseException:
            spool.discard()
            raise
        malformed: list[MalformedRow] = []
        if invalid and csv_file is not None:
            try:
                malformed, good = csv_file.malformed_lines()
            except (UnicodeDecodeError, csv.Error):
                good = -1
            # Python's csv module and pyarrow must have seen the same records.
            if [m.fields for m in malformed] != [r.actual for r in invalid] or good != scan.rows:
                log.info("%s: could not tell the lines of its %d malformed rows", name,
                         len(invalid))
                malformed = [MalformedRow(None, r.actual, None) for r in invalid]
        keys, conflicting = scan.result()
        return PreparedFile(scan.rows, keys, conflicting, spool, csv_file, tuple(invalid),
                            tuple(malformed))

    def _file(self, stream: FileStream, landed: LandedFile, sha256: str,
              record: ProcessedFiles, keep: int, context: ReadContext,
              note_skips: Callable[[], None]) -> Iterator[Extract]:
        """One file: its snapshot in chunks, or one extract rejecting it."""
        try:
            prepared = self.prepare(stream, landed)
        except UnreadableFile as exc:
            yield self._reject(stream, landed, sha256, record, keep, note_skips, str(exc),
                               "unreadable")
            return
        except FileNotFoundError:
            log.warning("%s vanished before it was read; skipped", landed.name)
            return
        try:
            yield from self._prepared_file(stream, landed, sha256, prepared, record, keep,
                                           context, note_skips)
        finally:
            prepared.records.discard()

    def _prepared_file(self, stream: FileStream, landed: LandedFile, sha256: str,
                       prepared: PreparedFile, record: ProcessedFiles, keep: int,
                       context: ReadContext, note_skips: Callable[[], None]
                       ) -> Iterator[Extract]:
        """A file through its pre-pass: refused as too small, or its snapshot in chunks."""
        snapshot_id = f"{landed.name}#{sha256}"
        if prepared.conflicting_keys:
            log.warning("%s: %d keys hold two or more different records", landed.name,
                        len(prepared.conflicting_keys))

        current, ratio = context.current_records, self.settings.min_snapshot_ratio
        if (stream.snapshot and ratio > 0 and current and prepared.keys < ratio * current
                and snapshot_id not in context.accepted_snapshots):
            reason = (
                f"{landed.name}: holds {prepared.keys:,} records where {current:,} are "
                f"current, less than {ratio:.0%} of them: taken for a truncated export, it is "
                "not loaded and closes nothing. If the drop is real, an operator can accept "
                f"it: hub snapshot accept {self.source.name} {stream.name} {snapshot_id}")
            yield self._reject(stream, landed, sha256, record, keep, note_skips, reason,
                               "too_small")
            return

        before = record.to_state(keep)  # a crash mid-file re-reads the whole file next run
        # Rejected rows not yet given to an extract, with the good records before each:
        # a reject goes with the chunk holding the record after it.
        found: list[tuple[int | None, RowReject]] = []
        for i, row in enumerate(prepared.invalid):
            where = prepared.malformed[i] if i < len(prepared.malformed) else None
            found.append((where.good_before if where else None,
                          self._row_reject(landed.name, prepared.csv_file, row,
                                           where.line if where else None)))
        rejected_rows = len(prepared.invalid)

        rows = 0
        previous: tuple[pa.Table, list[RowReject]] | None = None
        for chunk in prepared.records.tables():
            if previous is not None:
                yield Extract(previous[0], before, snapshot_id=snapshot_id,
                              conflicting_keys=prepared.conflicting_keys, rejects=previous[1])
            rows += chunk.num_rows
            mine = [r for before_it, r in found if before_it is None or before_it < rows]
            found = [(b, r) for b, r in found if not (b is None or b < rows)]
            previous = (chunk, self._keyed(stream, mine))
        record.note(landed, sha256, "loaded", rows)
        if rejected_rows:
            record.files[landed.name]["rejected_rows"] = rejected_rows
        note_skips()
        log.info("%s: %d records, %d rows unreadable, snapshot complete", landed.name, rows,
                 rejected_rows)
        if previous is None:  # a file with a header and no records: everyone has gone
            previous = (self.add_fields(stream, _empty(stream.file_fields)), [])
        yield Extract(previous[0], record.to_state(keep), snapshot_id=snapshot_id,
                      snapshot_complete=True, conflicting_keys=prepared.conflicting_keys,
                      rejects=previous[1] + self._keyed(stream, [r for _, r in found]))

    def _reject(self, stream: FileStream, landed: LandedFile, sha256: str,
                record: ProcessedFiles, keep: int, note_skips: Callable[[], None],
                reason: str, kind: str) -> Extract:
        """The extract that records a file as not loaded: no records, no snapshot."""
        log.warning("%s", reason)
        record.note(landed, sha256, "rejected" if kind == "unreadable" else "refused",
                    reason=reason)
        note_skips()
        return Extract(_empty(stream.fields), record.to_state(keep),
                       rejected_files=[RejectedFile(landed.name, sha256, reason, kind)])

    def _keyed(self, stream: FileStream, rejects: list[RowReject]) -> list[RowReject]:
        """Rejected rows with the key their fields give (`add_fields` derives it where the
        stream's key is derived), so quarantine knows whose row it was."""
        if not rejects:
            return rejects
        table = pa.table({f: pa.array([r.payload.get(f) for r in rejects], pa.string())
                          for f in stream.file_fields})
        try:
            keys = self.add_fields(stream, table)[stream.key_field].to_pylist()
        except (KeyError, pa.ArrowException):
            return rejects
        return [replace(r, source_id=k) if isinstance(k, str) and k.strip() else r
                for r, k in zip(rejects, keys, strict=True)]

    @staticmethod
    def _row_reject(name: str, csv_file: CsvFile | None, row: InvalidCsvRow,
                    line: int | None) -> RowReject:
        where = f"{name} line {line}" if line is not None else f"{name} (line unknown)"
        return RowReject(
            rule="row_readable",
            reason=f"{where}: {row.actual} field{'s' if row.actual != 1 else ''} where "
                   f"the header has {row.expected}",
            where=where,
            payload=csv_file.row_payload(row.text) if csv_file else {"_text": row.text})


def _empty(fields: Sequence[str]) -> pa.Table:
    return pa.table({f: pa.array([], pa.string()) for f in fields})
