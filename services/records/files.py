"""Reading and writing bulk files: JSON Lines and CSV, streamed.

A row of either format names ``type``, optionally ``id`` (the record id; the sector
database's own key is a good one), ``owner_id`` and ``reason``, and its ``data``: a JSON
object (in CSV, a column holding the object's JSON text). What export writes besides
(``version``, ``schema_version``, ``update_time``, ``field``) is accepted and ignored, so an
export can be imported elsewhere.

A file that cannot be read as a whole (not UTF-8, malformed CSV quoting, a CSV header
without ``type`` and ``data``, a line that is not JSON at all) is refused with
:class:`FileRefused` naming the row; a row whose content is wrong (data that is not an
object, an unknown key) is a :class:`RowError` that the import reports and skips.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from smartcity.services.records.model import ImportRow, RecordVersion

MAX_LINE_BYTES = 8 * 1024 * 1024
"""A row longer than this is refused before it is parsed (records are far smaller)."""
ROW_KEYS = {"id", "type", "owner_id", "data", "reason"}
EXPORT_KEYS = ("id", "type", "field", "owner_id", "version", "schema_version", "update_time")
CSV_COLUMNS = (*EXPORT_KEYS, "data")


class FileRefused(Exception):  # noqa: N818 - what happened to the file
    """The file cannot be read as a whole; nothing of it is imported."""


@dataclass(frozen=True, slots=True)
class RowError:
    number: int
    message: str


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _row(number: int, value: Any) -> ImportRow | RowError:
    if not isinstance(value, dict):
        return RowError(number, "a row must be a JSON object")
    unknown = sorted(set(value) - ROW_KEYS - set(EXPORT_KEYS))
    if unknown:
        return RowError(number, f"unknown keys: {', '.join(unknown)[:200]}")
    kind, data = value.get("type"), value.get("data")
    if not isinstance(kind, str) or not kind:
        return RowError(number, "type: required, a record type id")
    if not isinstance(data, dict):
        return RowError(number, "data: required, a JSON object")
    texts = {}
    for key in ("id", "owner_id", "reason"):
        item = value.get(key)
        if item is not None and not isinstance(item, str):
            return RowError(number, f"{key}: must be text")
        texts[key] = item or None
    return ImportRow(number, texts["id"], kind, texts["owner_id"], data, texts["reason"] or "")


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    """Decoded lines, numbered from 1; a BOM is allowed at the very start only."""
    for number, raw in enumerate(stream, start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise FileRefused(f"line {number}: longer than {MAX_LINE_BYTES} bytes")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FileRefused(
                f"line {number}: not UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
            ) from None


def read_jsonl(stream: IO[bytes]) -> Iterator[ImportRow | RowError]:
    """The rows of a JSON Lines file; blank lines are skipped, rows numbered by line."""
    for number, line in _lines(stream):
        if not line.strip():
            continue
        try:
            value = _loads(line)
        except ValueError as exc:
            yield RowError(number, f"not JSON: {str(exc)[:200]}")
            continue
        yield _row(number, value)


def read_csv(stream: IO[bytes], *, parse: bool = True) -> Iterator[ImportRow | RowError]:
    """The rows of a CSV file with a header; rows are numbered by their first line. Without
    ``parse`` only the file's structure is read: each row is an empty :class:`RowError`."""
    lines = _lines(stream)
    where = {"line": 1}

    def text() -> Iterator[str]:
        for number, line in lines:
            where["line"] = number
            yield line

    csv.field_size_limit(MAX_LINE_BYTES)
    reader = csv.DictReader(text(), strict=True)
    try:
        header = reader.fieldnames or []
        if "type" not in header or "data" not in header:
            raise FileRefused("row 1 (header): needs the columns type and data")
        duplicated = {name for name in header if header.count(name) > 1}
        if duplicated:
            raise FileRefused(f"row 1 (header): repeated columns {', '.join(sorted(duplicated))}")
        row_start = where["line"] + 1
        for record in reader:
            number = row_start
            row_start = where["line"] + 1
            if None in record or None in record.values():
                raise FileRefused(
                    f"row at line {number}: {len(header)} columns expected, a different "
                    "number found"
                )
            if not parse:
                yield RowError(number, "")
                continue
            value: dict[str, Any] = {k: v for k, v in record.items() if v != ""}
            try:
                value["data"] = _loads(record.get("data") or "")
            except ValueError as exc:
                yield RowError(number, f"data: not JSON: {str(exc)[:200]}")
                continue
            yield _row(number, value)
    except csv.Error as exc:
        raise FileRefused(f"row at line {where['line']}: malformed CSV: {exc}") from None


def count_rows(fmt: str, stream: IO[bytes]) -> int:
    """Rows of a file, reading its structure only (no JSON is parsed); :class:`FileRefused`
    if it cannot be read as a whole."""
    if fmt == "csv":
        return sum(1 for _ in read_csv(stream, parse=False))
    return sum(1 for _, line in _lines(stream) if line.strip())


def reader(fmt: str, stream: IO[bytes]) -> Iterator[ImportRow | RowError]:
    if fmt == "jsonl":
        return read_jsonl(stream)
    if fmt == "csv":
        return read_csv(stream)
    raise ValueError(f"unknown format {fmt!r}: jsonl or csv")


def export_row(version: RecordVersion) -> dict[str, Any]:
    return {
        "id": version.id,
        "type": version.type,
        "field": version.field,
        "owner_id": version.owner.id,
        "version": version.version,
        "schema_version": version.schema_version,
        "update_time": version.update_time,
        "data": version.data,
    }


def write_header(fmt: str, out: IO[str]) -> None:
    if fmt == "csv":
        csv.writer(out).writerow(CSV_COLUMNS)


def write_rows(fmt: str, out: IO[str], versions: Iterable[RecordVersion]) -> int:
    """Write ``versions`` as ``fmt`` (JSON Lines, or CSV rows after :func:`write_header`)."""
    count = 0
    writer = csv.writer(out) if fmt == "csv" else None
    for version in versions:
        row = export_row(version)
        if writer is not None:
            data = json.dumps(row["data"], ensure_ascii=False)
            writer.writerow([*(row[key] for key in EXPORT_KEYS), data])
        else:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
        count += 1
    return count
