"""File drops: full snapshots a platform leaves in a landing folder (SFTP push, share).

What every file platform shares, so a file connector only declares its streams:

- `FileStream`: a snapshot stream read from files whose names match a pattern
  with a `date` group (`residents_(?P<date>\\d{8})\\.csv`), in one format.
- Complete-file detection: only names matching the pattern count. Platforms
  write under a temporary name and rename when done, so a half-written
  `….csv.part` never matches; for drops written in place, `min_age_seconds`
  leaves a file alone until it has stopped changing for that long.
- The record of processed files lives in the stream's cursor state (committed
  with the data, so it is never ahead of or behind what was loaded): file name,
  sha256 and what became of it. A file is read once; the same bytes sent again
  (same name, or the next day's name with yesterday's content) are skipped, and a
  file dated before the last one loaded is skipped as stale: loading an older
  snapshot after a newer one would undo the newer one.
- Readers in bounded memory: GBK/GB 18030 CSV through pyarrow's streaming reader,
  xlsx through openpyxl's read-only mode, GeoJSON feature by feature. Every value
  comes out as text, as the file holds it, for the conform step to judge.

Each file becomes one snapshot: `Extract.snapshot_id` is its name and checksum,
and its last chunk is `snapshot_complete`, so the pipeline closes the records the
file no longer holds.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
from pydantic import Field, field_validator

from connectors.base import (
    Connector,
    Extract,
    ReadContext,
    SourceError,
    SourceSettings,
    Stream,
    as_text,
)

log = logging.getLogger(__name__)

FileFormat = Literal["csv", "xlsx", "geojson"]
# GeoJSON features: their properties are the fields, the geometry comes as JSON text.
GEOMETRY_FIELD = "geometry"


@dataclass(frozen=True)
class FileStream(Stream):
    """A snapshot stream delivered as one file per day (or per delivery)."""

    format: FileFormat = "csv"
    # Fields the connector adds to each record (not columns of the file).
    derived_fields: tuple[str, ...] = ()

    @property
    def file_fields(self) -> tuple[str, ...]:
        return tuple(f for f in self.fields if f not in self.derived_fields)


class FileDropSettings(SourceSettings):
    folder: str = Field(description="the landing folder the platform drops its files in")
    file_patterns: dict[str, str] = Field(
        default_factory=dict,
        description="stream → regular expression a complete file's name matches in full, "
                    "with a group `date` (yyyyMMdd); unset streams use the connector's default",
    )
    csv_encoding: str = Field("gb18030", description="text encoding of CSV files (GB 18030 "
                              "reads GBK files too: it is a superset)")
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


@dataclass(frozen=True)
class LandedFile:
    path: Path
    day: date

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def order(self) -> tuple[str, str]:
        return (self.day.isoformat(), self.name)


def landed_files(folder: Path, pattern: str, min_age_seconds: float = 0.0) -> list[LandedFile]:
    """Complete files in `folder` whose names match `pattern`, oldest first."""
    if not folder.is_dir():
        raise SourceError(f"landing folder {folder} does not exist or is not a folder")
    regex = re.compile(pattern)
    now = time.time()
    found = []
    for path in folder.iterdir():
        m = regex.fullmatch(path.name)
        if not m or not path.is_file():
            continue
        try:
            day = datetime.strptime(m.group("date"), "%Y%m%d").date()
        except ValueError:
            log.warning("%s: no date in its name; ignored", path.name)
            continue
        if min_age_seconds and now - path.stat().st_mtime < min_age_seconds:
            log.info("%s: changed less than %.0fs ago; left for the next run", path.name,
                     min_age_seconds)
            continue
        found.append(LandedFile(path, day))
    return sorted(found, key=lambda f: f.order)


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
    missing = [f for f in fields if f not in header]
    if missing:
        raise SourceError(f"{path.name}: column(s) {', '.join(missing)} missing; the file has "
                          f"{', '.join(map(str, header))}")


def read_csv(path: Path, fields: Sequence[str], *, encoding: str, chunk_rows: int,
             delimiter: str = ",") -> Iterator[pa.Table]:
    """A CSV file as text tables of `fields`, about `chunk_rows` rows at a time."""
    with open(path, "rb") as f:
        first = f.readline()
    header = _csv_header(first, encoding, delimiter)
    _missing(path, fields, header)
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(encoding=encoding, block_size=1 << 20),
        parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.string() for h in header}, include_columns=list(fields),
            strings_can_be_null=False, quoted_strings_can_be_null=False),
    )
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in reader:
        pending.append(batch)
        size += batch.num_rows
        while size >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows).combine_chunks()
            rest = table.slice(chunk_rows)
            pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield pa.Table.from_batches(pending).combine_chunks()


def _csv_header(first_line: bytes, encoding: str, delimiter: str) -> list[str]:
    text = first_line.decode(encoding).lstrip("\ufeff").rstrip("\r\n")
    return [h.strip() for h in next(csv.reader([text], delimiter=delimiter), [])]


def read_xlsx(path: Path, fields: Sequence[str], *, chunk_rows: int,
              sheet: str | None = None) -> Iterator[pa.Table]:
    """The first (or named) sheet of a workbook, header in row 1, in read-only mode."""
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = [_cell_text(v) or "" for v in next(rows, ())]
        header = [h.strip() for h in header]
        _missing(path, fields, header)
        positions = {f: header.index(f) for f in fields}
        columns: dict[str, list[str | None]] = {f: [] for f in fields}
        n = 0
        for row in rows:
            if not any(v is not None and v != "" for v in row):
                continue  # Excel keeps formatted empty rows
            for f, i in positions.items():
                columns[f].append(_cell_text(row[i]) if i < len(row) else None)
            n += 1
            if n == chunk_rows:
                yield _text_table(fields, columns)
                columns, n = {f: [] for f in fields}, 0
        if n:
            yield _text_table(fields, columns)
    finally:
        wb.close()


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
    except (ValueError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path.name}: not a GeoJSON file: {exc}") from None
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list):
        raise SourceError(f"{path.name}: not a GeoJSON FeatureCollection")
    for start in range(0, len(features), chunk_rows):
        columns: dict[str, list[str | None]] = {f: [] for f in fields}
        for feature in features[start:start + chunk_rows]:
            props = feature.get("properties") or {}
            for name in fields:
                value = feature.get(GEOMETRY_FIELD) if name == GEOMETRY_FIELD else props.get(name)
                columns[name].append(None if value is None else value if isinstance(value, str)
                                  else json.dumps(value, ensure_ascii=False))
        yield _text_table(fields, columns)


# ----------------------------------------------------------- processed-files record


@dataclass
class ProcessedFiles:
    """A stream's record of the files it has dealt with: its cursor state.

    `files`: name → {"sha256", "outcome" (loaded / identical / stale), "rows"};
    `last`: the name of the last file loaded, whose date and bytes new files are
    compared with.
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

    def note(self, landed: LandedFile, sha256: str, outcome: str, rows: int = 0) -> None:
        self.files[landed.name] = {"sha256": sha256, "date": landed.day.isoformat(),
                                   "outcome": outcome, "rows": rows}
        if outcome == "loaded":
            self.last = landed.name


class FileDropConnector(Connector):
    """A connector whose `FileStream`s are read from a landing folder."""

    settings: FileDropSettings
    # stream → default file-name pattern; the sources file can override each.
    default_patterns: dict[str, str] = {}

    def pattern(self, stream: FileStream) -> str:
        return self.settings.file_patterns.get(stream.name) or self.default_patterns[stream.name]

    def add_fields(self, stream: FileStream, records: pa.Table) -> pa.Table:
        """Append `stream.derived_fields` to records read from a file (none by default)."""
        return records

    def read_file(self, stream: FileStream, path: Path) -> Iterator[pa.Table]:
        s = self.settings
        fields = stream.file_fields
        if stream.format == "csv":
            return read_csv(path, fields, encoding=s.csv_encoding, chunk_rows=s.chunk_rows,
                            delimiter=s.csv_delimiter)
        if stream.format == "xlsx":
            return read_xlsx(path, fields, chunk_rows=s.chunk_rows)
        return read_geojson(path, fields, chunk_rows=s.chunk_rows)

    def extract_files(self, stream: FileStream, state: Mapping[str, Any] | None,
                      context: ReadContext) -> Iterator[Extract]:
        """Every new complete file, oldest first, each as one snapshot."""
        record = ProcessedFiles.from_state(state)
        plan = self._plan(stream, record)
        keep = self.settings.remembered_files
        loads = [i for i, (_, _, verdict) in enumerate(plan) if verdict == "load"]
        for landed, sha256, verdict in plan[:loads[0] if loads else 0]:
            record.note(landed, sha256, verdict)  # skipped before the first load
        for i, (landed, sha256, verdict) in enumerate(plan):
            if verdict != "load":
                continue
            # Files skipped up to the next load are decided already: their notes ride
            # on this file's cursor instead of costing a batch of their own.
            following: list[tuple[LandedFile, str, str]] = []
            for item in plan[i + 1:]:
                if item[2] == "load":
                    break
                following.append(item)
            yield from self._snapshot(stream, landed, sha256, record, keep, following)
        if plan and not loads:
            for landed, sha256, verdict in plan:
                record.note(landed, sha256, verdict)
            # Nothing to load, but the decisions are committed like any cursor.
            yield Extract(_empty(stream.fields), record.to_state(keep))

    def _plan(self, stream: FileStream,
              record: ProcessedFiles) -> list[tuple[LandedFile, str, str]]:
        """(file, sha256, verdict) of each file not dealt with yet, oldest first."""
        folder = Path(self.settings.folder)
        simulated = ProcessedFiles(dict(record.files), record.last)
        plan = []
        for landed in landed_files(folder, self.pattern(stream), self.settings.min_age_seconds):
            try:
                sha256 = sha256_of(landed.path)
            except FileNotFoundError:
                log.warning("%s vanished before it was read; skipped", landed.name)
                continue
            if simulated.seen(landed.name, sha256):
                continue
            verdict = simulated.verdict(landed, sha256)
            if verdict == "identical":  # a resend, or a day without changes
                log.info("%s: the same bytes as %s; skipped", landed.name, simulated.last)
            elif verdict == "stale":
                log.warning("%s: older than %s, which is loaded already; skipped as stale",
                            landed.name, simulated.last)
            simulated.note(landed, sha256, "loaded" if verdict == "load" else verdict)
            plan.append((landed, sha256, verdict))
        return plan

    def _snapshot(self, stream: FileStream, landed: LandedFile, sha256: str,
                  record: ProcessedFiles, keep: int,
                  skipped_after: list[tuple[LandedFile, str, str]]) -> Iterator[Extract]:
        snapshot_id = f"{landed.name}#{sha256}"
        before = record.to_state(keep)  # a crash mid-file re-reads the whole file next run
        rows = 0
        previous: pa.Table | None = None
        for chunk in self.read_file(stream, landed.path):
            chunk = self.add_fields(stream, chunk)
            if previous is not None:
                yield Extract(previous, before, snapshot_id=snapshot_id)
            rows += chunk.num_rows
            previous = chunk
        record.note(landed, sha256, "loaded", rows)
        for skipped, skipped_sha, verdict in skipped_after:
            record.note(skipped, skipped_sha, verdict)
        log.info("%s: %d records, snapshot complete", landed.name, rows)
        if previous is None:  # a file with a header and no records: everyone has gone
            previous = self.add_fields(stream, _empty(stream.file_fields))
        yield Extract(previous, record.to_state(keep), snapshot_id=snapshot_id,
                      snapshot_complete=True)


def _empty(fields: Sequence[str]) -> pa.Table:
    return pa.table({f: pa.array([], pa.string()) for f in fields})
