"""The workbench's own recording format: normalized events in Parquet, one row per event.

Layout: one column per field of :data:`workbench.types.event_dt`, same names and integer types (int64, uint8,
int8, uint16), zstd-compressed, row groups of ``row_group_rows`` rows. The schema metadata key ``workbench`` holds
JSON ``{"format_version": 1, "instrument": {"symbol", "tick_size", "lot_size"}, "source": "..."}`` so prices and
sizes (integer ticks and lots) can be turned back into decimals. Plain pandas (``pd.read_parquet``), pyarrow and
duckdb read the file as an ordinary table.

A file is written under a temporary name (``<name>.partial``) and renamed when it is complete, so a recording at
its final path is always a whole Parquet file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from types import TracebackType

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError
from workbench.instrument import Instrument
from workbench.types import event_dt

__all__ = ["FORMAT_VERSION", "ParquetRecorder", "read_events", "read_instrument", "read_metadata", "write_events"]

#: Version of the layout written here; readers accept this version and older ones.
FORMAT_VERSION = 1
_META_KEY = b"workbench"
DEFAULT_ROW_GROUP_ROWS = 1 << 18
DEFAULT_CHUNK_ROWS = 65536

_ARROW_TYPES = {
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.uint8): pa.uint8(),
    np.dtype(np.int8): pa.int8(),
    np.dtype(np.uint16): pa.uint16(),
}
_FIELDS: list[str] = list(event_dt.names)  # type: ignore[arg-type]


def _schema(instrument: Instrument, source: str) -> pa.Schema:
    meta = {
        "format_version": FORMAT_VERSION,
        "instrument": {
            "symbol": instrument.symbol,
            "tick_size": instrument.tick_size,
            "lot_size": instrument.lot_size,
        },
        "source": source,
    }
    fields = [pa.field(name, _ARROW_TYPES[event_dt.fields[name][0]], nullable=False) for name in _FIELDS]
    return pa.schema(fields, metadata={_META_KEY: json.dumps(meta).encode()})


class ParquetRecorder:
    """Incremental recording of event chunks into one Parquet file.

    >>> with ParquetRecorder("day.parquet", instrument=inst, source="lobster AMZN") as rec:  # doctest: +SKIP
    ...     for chunk in events:
    ...         rec.append(chunk)

    Appended rows are buffered up to ``row_group_rows`` and written as one row group (many tiny row groups make a
    slow file). :meth:`close` writes the rest and moves the file to ``path``; leaving the ``with`` block closes it,
    also after an exception (what was recorded is kept). :meth:`abort` discards the file instead.
    """

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        instrument: Instrument,
        source: str = "",
        row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
    ) -> None:
        if not isinstance(instrument, Instrument):
            raise ConfigError(f"instrument must be a workbench Instrument, got {type(instrument).__name__}")
        if isinstance(row_group_rows, bool) or not isinstance(row_group_rows, int) or row_group_rows < 1:
            raise ConfigError(f"row_group_rows must be a positive integer, got {row_group_rows!r}")
        self.path = Path(path)
        self.instrument = instrument
        self.rows_written = 0
        self._row_group_rows = row_group_rows
        self._schema = _schema(instrument, str(source))
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._buffer: list[np.ndarray] = []
        self._buffered = 0
        try:
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
                self._partial, self._schema, compression="zstd"
            )
        except OSError as exc:
            raise DataError(f"cannot write {self.path}: {exc}") from exc

    @property
    def closed(self) -> bool:
        return self._writer is None

    def append(self, chunk: np.ndarray) -> None:
        """Record one chunk of :data:`~workbench.types.event_dt` rows (copied; the caller may reuse its array)."""
        if self._writer is None:
            raise ConfigError(f"{self.path.name}: the recorder is closed")
        if not isinstance(chunk, np.ndarray) or chunk.dtype != event_dt or chunk.ndim != 1:
            got = getattr(chunk, "dtype", type(chunk).__name__)
            raise ConfigError(f"append takes a 1-D array of workbench.types.event_dt, got {got}")
        if not len(chunk):
            return
        self._buffer.append(chunk.copy())
        self._buffered += len(chunk)
        while self._buffered >= self._row_group_rows:
            self._write(self._row_group_rows)

    def _write(self, rows: int) -> None:
        whole = np.concatenate(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        part, rest = whole[:rows], whole[rows:]
        self._buffer, self._buffered = ([rest] if len(rest) else []), len(rest)
        table = pa.Table.from_arrays(
            [pa.array(np.ascontiguousarray(part[name]), type=self._schema.field(name).type) for name in _FIELDS],
            schema=self._schema,
        )
        assert self._writer is not None
        self._writer.write_table(table, row_group_size=rows)
        self.rows_written += rows

    def close(self) -> int:
        """Write what is buffered, finish the file and move it to ``path``; returns the rows written. Idempotent."""
        if self._writer is None:
            return self.rows_written
        if self._buffered:
            self._write(self._buffered)
        writer, self._writer = self._writer, None
        writer.close()
        os.replace(self._partial, self.path)
        return self.rows_written

    def abort(self) -> None:
        """Discard the recording (nothing appears at ``path``). Idempotent."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        self._buffer, self._buffered = [], 0
        try:
            writer.close()
        finally:
            self._partial.unlink(missing_ok=True)

    def __enter__(self) -> ParquetRecorder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:  # a recorder dropped without close(): leave no half-written file behind
        if getattr(self, "_writer", None) is not None:
            try:
                self.abort()
            except Exception:
                pass


def write_events(
    path: str | PathLike[str],
    chunks: Iterable[np.ndarray],
    *,
    instrument: Instrument,
    source: str = "",
    row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
) -> int:
    """Write event chunks to a Parquet recording at ``path``; returns the number of rows written.

    If ``chunks`` raises (e.g. a reader hits an unreadable file), nothing is left at ``path`` and the error
    propagates.
    """
    rec = ParquetRecorder(path, instrument=instrument, source=source, row_group_rows=row_group_rows)
    try:
        for chunk in chunks:
            rec.append(chunk)
    except BaseException:
        rec.abort()
        raise
    return rec.close()


# =====================================================================================================================
# Reading
# =====================================================================================================================


def _open(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise DataError(f"cannot open {path}: no such file")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            raise DataError(f"cannot open {path}: {exc}") from exc
        raise UnrecognisedFormatError(f"{path.name}: not a Parquet file ({exc})") from exc


def _meta(pf: pq.ParquetFile, path: Path) -> dict:
    raw = (pf.schema_arrow.metadata or {}).get(_META_KEY)
    if raw is None:
        raise UnrecognisedFormatError(f"{path.name}: a Parquet file, but not a workbench recording (no metadata)")
    try:
        meta = json.loads(raw)
        version = int(meta["format_version"])
        inst = meta["instrument"]
        instrument = Instrument(str(inst["symbol"]), tick_size=str(inst["tick_size"]), lot_size=str(inst["lot_size"]))
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise UnrecognisedFormatError(f"{path.name}: unreadable workbench metadata ({exc})") from exc
    if version > FORMAT_VERSION:
        raise UnrecognisedFormatError(
            f"{path.name}: recording format version {version} is newer than this reader ({FORMAT_VERSION})"
        )
    missing = [n for n in _FIELDS if n not in pf.schema_arrow.names]
    if missing:
        raise UnrecognisedFormatError(f"{path.name}: not a workbench recording: missing columns {missing}")
    bad = [n for n in _FIELDS if not pa.types.is_integer(pf.schema_arrow.field(n).type)]
    if bad:
        raise UnrecognisedFormatError(f"{path.name}: not a workbench recording: non-integer columns {bad}")
    return {
        "format_version": version,
        "instrument": instrument,
        "source": str(meta.get("source", "")),
        "rows": pf.metadata.num_rows,
    }


def read_metadata(path: str | PathLike[str]) -> dict:
    """``{"format_version", "instrument", "source", "rows"}`` of a recording (UnrecognisedFormatError if none)."""
    path = Path(path)
    pf = _open(path)
    try:
        return _meta(pf, path)
    finally:
        pf.close()


def read_instrument(path: str | PathLike[str]) -> Instrument:
    """The :class:`~workbench.instrument.Instrument` a recording was written with."""
    return read_metadata(path)["instrument"]


def read_events(
    path: str | PathLike[str],
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    columns: Sequence[str] | None = None,
) -> Iterator[np.ndarray]:
    """Event chunks (at most ``chunk_rows`` rows, :data:`~workbench.types.event_dt`) of a recording.

    ``columns`` reads only those fields (the others are 0 in the chunks), which is faster for wide scans.
    Raises (when called) DataError if the file cannot be opened, UnrecognisedFormatError if it is not a workbench
    recording, ConfigError for an unknown column name.
    """
    path = Path(path)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ConfigError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    cols = list(_FIELDS if columns is None else columns)
    unknown = [c for c in cols if c not in _FIELDS]
    if unknown or (columns is not None and isinstance(columns, str)):
        raise ConfigError(f"columns must be names of event_dt fields {_FIELDS}, got {columns!r}")
    read_metadata(path)  # checks now, so a bad file fails at the call, not at the first next()
    return _read(path, chunk_rows, cols)


def _read(path: Path, chunk_rows: int, cols: list[str]) -> Iterator[np.ndarray]:
    pf = _open(path)
    try:
        for batch in pf.iter_batches(batch_size=chunk_rows, columns=cols):
            out = np.zeros(batch.num_rows, dtype=event_dt)
            for name in cols:
                col = batch.column(name)
                if col.null_count:
                    raise UnrecognisedFormatError(f"{path.name}: column {name} has nulls")
                values = col.to_numpy(zero_copy_only=False)
                target = event_dt.fields[name][0]
                if values.dtype != target:
                    cast = values.astype(target)
                    if not np.array_equal(cast, values):
                        raise UnrecognisedFormatError(f"{path.name}: column {name} does not fit {target}")
                    values = cast
                out[name] = values
            yield out
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path.name}: read failed: {exc}") from exc
    finally:
        pf.close()
