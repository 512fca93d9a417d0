"""Parquet recordings: round trip, metadata, incremental recording, faults."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.data.parquet import (
    FORMAT_VERSION,
    ParquetRecorder,
    read_events,
    read_instrument,
    read_metadata,
    write_events,
)
from workbench.exceptions import ConfigError, DataError, UnrecognisedFormatError
from workbench.instrument import Instrument
from workbench.types import event_dt

INST = Instrument("BTCUSDT", tick_size="0.01", lot_size="0.00001")


def random_events(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=event_dt)
    for name in event_dt.names:
        info = np.iinfo(event_dt.fields[name][0])
        ev[name] = rng.integers(info.min, info.max, size=n, dtype=event_dt.fields[name][0], endpoint=True)
    if n >= 2:  # the extremes of every type survive
        for name in event_dt.names:
            info = np.iinfo(event_dt.fields[name][0])
            ev[name][:2] = (info.min, info.max)
    return ev


def split(ev: np.ndarray, sizes) -> list[np.ndarray]:
    return np.split(ev, np.cumsum(sizes)[:-1]) if len(sizes) else []


@pytest.mark.parametrize("row_group_rows,chunk_rows", [(1, 1), (7, 3), (100, 1000), (1 << 18, 65536)])
def test_round_trip(tmp_path, row_group_rows, chunk_rows):
    ev = random_events(250)
    path = tmp_path / "rec.parquet"
    chunks = split(ev, [1, 0, 30, 19, 200])
    n = write_events(path, chunks, instrument=INST, source="test", row_group_rows=row_group_rows)
    assert n == 250
    chunks = list(read_events(path, chunk_rows=chunk_rows))
    assert all(c.dtype == event_dt and 1 <= len(c) <= chunk_rows for c in chunks)
    assert np.array_equal(np.concatenate(chunks), ev)
    assert read_instrument(path) == INST
    meta = read_metadata(path)
    assert meta["source"] == "test" and meta["rows"] == 250 and meta["format_version"] == FORMAT_VERSION
    assert not list(tmp_path.glob("*.partial"))


def test_pandas_reads_plain_integer_columns(tmp_path):
    ev = random_events(50)
    path = tmp_path / "rec.parquet"
    write_events(path, [ev], instrument=INST)
    df = pd.read_parquet(path)
    assert list(df.columns) == list(event_dt.names)
    for name in event_dt.names:
        assert df[name].dtype == event_dt.fields[name][0]
        assert np.array_equal(df[name].to_numpy(), ev[name])
    schema = pq.read_schema(path)
    assert json.loads(schema.metadata[b"workbench"])["instrument"]["tick_size"] == "0.01"
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "ZSTD"


def test_column_subset(tmp_path):
    ev = random_events(20)
    path = tmp_path / "rec.parquet"
    write_events(path, [ev], instrument=INST)
    got = np.concatenate(list(read_events(path, columns=["kind", "px_ticks"])))
    assert np.array_equal(got["px_ticks"], ev["px_ticks"]) and np.array_equal(got["kind"], ev["kind"])
    assert (got["ts_exch_ns"] == 0).all() and (got["id"] == 0).all()
    with pytest.raises(ConfigError):
        read_events(path, columns=["price"])
    with pytest.raises(ConfigError):
        read_events(path, chunk_rows=0)


def test_recorder_incremental(tmp_path):
    ev = random_events(100)
    path = tmp_path / "live.parquet"
    with ParquetRecorder(path, instrument=INST, source="live", row_group_rows=16) as rec:
        for c in split(ev, [10] * 10):
            rec.append(c)
            c["px_ticks"] = 0  # the recorder copied: reusing the caller's buffer is safe
        assert rec.rows_written == 96 and not path.exists()  # complete row groups only, under the .partial name
    assert rec.closed and rec.close() == 100
    assert np.array_equal(np.concatenate(list(read_events(path))), random_events(100))
    assert pq.ParquetFile(path).metadata.num_row_groups == 7
    with pytest.raises(ConfigError, match="closed"):
        rec.append(ev)


def test_recorder_keeps_what_was_recorded_when_the_block_fails(tmp_path):
    path = tmp_path / "rec.parquet"
    with pytest.raises(RuntimeError):
        with ParquetRecorder(path, instrument=INST) as rec:
            rec.append(random_events(5))
            raise RuntimeError("strategy crashed")
    assert len(np.concatenate(list(read_events(path)))) == 5


def test_abort_and_failing_source_leave_nothing(tmp_path):
    rec = ParquetRecorder(tmp_path / "a.parquet", instrument=INST)
    rec.append(random_events(5))
    rec.abort()
    assert not list(tmp_path.iterdir())

    def chunks():
        yield random_events(5)
        raise DataError("source went away")

    with pytest.raises(DataError, match="went away"):
        write_events(tmp_path / "b.parquet", chunks(), instrument=INST)
    assert not list(tmp_path.iterdir())


def test_append_rejects_other_arrays(tmp_path):
    with ParquetRecorder(tmp_path / "a.parquet", instrument=INST) as rec:
        with pytest.raises(ConfigError, match="event_dt"):
            rec.append(np.zeros(3, dtype=np.int64))
        with pytest.raises(ConfigError, match="event_dt"):
            rec.append(np.zeros((2, 2), dtype=event_dt))
    with pytest.raises(ConfigError):
        ParquetRecorder(tmp_path / "b.parquet", instrument="BTCUSDT")  # type: ignore[arg-type]


def test_empty_recording(tmp_path):
    path = tmp_path / "empty.parquet"
    assert write_events(path, [], instrument=INST) == 0
    assert list(read_events(path)) == []
    assert read_instrument(path) == INST and len(pd.read_parquet(path)) == 0


def test_not_a_recording(tmp_path):
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({name: [0] for name in event_dt.names}).to_parquet(plain)
    with pytest.raises(UnrecognisedFormatError, match="no metadata"):
        read_events(plain)

    full = tmp_path / "full.parquet"
    write_events(full, [random_events(3)], instrument=INST)
    table = pq.read_table(full)
    short = tmp_path / "short.parquet"
    pq.write_table(table.drop_columns(["flags"]), short)
    with pytest.raises(UnrecognisedFormatError, match="missing columns"):
        read_events(short)

    newer = tmp_path / "newer.parquet"
    meta = json.loads(table.schema.metadata[b"workbench"])
    meta["format_version"] = FORMAT_VERSION + 1
    pq.write_table(table.replace_schema_metadata({b"workbench": json.dumps(meta).encode()}), newer)
    with pytest.raises(UnrecognisedFormatError, match="newer"):
        read_instrument(newer)

    garbled = tmp_path / "garbled.parquet"
    pq.write_table(table.replace_schema_metadata({b"workbench": b"{not json"}), garbled)
    with pytest.raises(UnrecognisedFormatError, match="metadata"):
        read_events(garbled)

    text = tmp_path / "text.parquet"
    text.write_text("ts,px\n1,2\n")
    empty = tmp_path / "zero.parquet"
    empty.write_bytes(b"")
    for p in (text, empty):
        with pytest.raises(UnrecognisedFormatError, match=p.name):
            read_events(p)
    with pytest.raises(DataError, match="no such file"):
        read_events(tmp_path / "missing.parquet")


def test_narrower_integer_columns_are_accepted(tmp_path):
    """A recording written by another tool with int32 ids still reads (values are checked to fit)."""
    full = tmp_path / "full.parquet"
    ev = random_events(4)
    ev["id"] = [1, 2, 3, 4]
    write_events(full, [ev], instrument=INST)
    table = pq.read_table(full)
    i = table.schema.get_field_index("id")
    narrow = table.set_column(i, pa.field("id", pa.int32()), table.column("id").cast(pa.int32()))
    pq.write_table(narrow, tmp_path / "narrow.parquet")
    assert np.array_equal(np.concatenate(list(read_events(tmp_path / "narrow.parquet"))), ev)


@pytest.mark.data
def test_real_lobster_round_trip(shared_data, tmp_path):
    from workbench.data.lobster import iter_lobster_messages, lobster_instrument

    src = shared_data / "lobster" / "AMZN_2012-06-21_34200000_57600000_message_1.csv"
    if not src.exists():
        pytest.skip(f"{src} not found")
    path = tmp_path / "amzn.parquet"
    n = write_events(path, iter_lobster_messages(src), instrument=lobster_instrument(src), source=src.name)
    assert n == 57_515
    back = np.concatenate(list(read_events(path)))
    assert np.array_equal(back, np.concatenate(list(iter_lobster_messages(src))))
    assert read_metadata(path)["source"] == src.name and read_instrument(path).symbol == "AMZN"
