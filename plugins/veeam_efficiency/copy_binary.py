"""A table in PostgreSQL's binary ``COPY`` format, built with numpy, a column at a time.

The text format costs a Python string per value on our side and parsing every
timestamp and float on the server's. Binary needs neither: fixed-width values are
written as big-endian arrays, text as its UTF-8 bytes, and each chunk of rows is
assembled from those pieces with a single numpy gather, never a loop over rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pandas as pd

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no header extension
TRAILER = b"\xff\xff"
PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")

# PostgreSQL type (as format_type names it) -> big-endian numpy type of its binary form
FIXED = {
    "bigint": ">i8",
    "integer": ">i4",
    "smallint": ">i2",
    "double precision": ">f8",
    "boolean": "u1",
    "timestamp with time zone": ">i8",
    "date": ">i4",
}
INT_RANGE = {"bigint": 2**63, "integer": 2**31, "smallint": 2**15}


class NotBinaryCopyable(ValueError):
    """A value or type this writer does not encode; the caller falls back to the text format."""


def supported(pg_type: str) -> bool:
    return pg_type in FIXED or pg_type in ("text", "jsonb") or pg_type.startswith("character")


def binary_copy_chunks(frame: pd.DataFrame, pg_types: dict[str, str], rows: int = 50_000) -> Iterator[bytes]:
    """``frame``'s columns ``pg_types`` (name -> PostgreSQL type) as ``COPY ... (FORMAT BINARY)`` data.

    Raises :class:`NotBinaryCopyable` at once (before any data is produced) for a type
    it cannot encode or an integer outside its column's range, so the caller can still
    choose the text format, whose COPY PostgreSQL then rejects with its own error.
    """
    unsupported = [f"{name} {kind}" for name, kind in pg_types.items() if not supported(kind)]
    if unsupported:
        raise NotBinaryCopyable(f"no binary encoding for {unsupported}")
    for name, pg_type in pg_types.items():
        limit = INT_RANGE.get(pg_type)
        values = frame[name].dropna()
        if limit is not None and len(values) and (values.min() < -limit or values.max() >= limit):
            raise NotBinaryCopyable(f"{name}: a value outside the range of {pg_type}")
    return _chunks(frame, pg_types, rows)


def _chunks(frame: pd.DataFrame, pg_types: dict[str, str], rows: int) -> Iterator[bytes]:
    yield HEADER
    for start in range(0, len(frame), rows):
        yield encode_rows(frame.iloc[start : start + rows], pg_types)
    yield TRAILER


def encode_rows(part: pd.DataFrame, pg_types: dict[str, str]) -> bytes:
    """The rows of ``part`` (no header or trailer): each a field count, then length + bytes per field."""
    n = len(part)
    pieces = [np.full(n, len(pg_types), dtype=">i2").view(np.uint8)]
    lengths = [np.full(n, 2, dtype=np.int64)]
    for name, pg_type in pg_types.items():
        payload, size = _field(part[name], pg_type)
        pieces += [np.where(size < 0, -1, size).astype(">i4").view(np.uint8), payload]
        lengths += [np.full(n, 4, dtype=np.int64), np.maximum(size, 0)]
    return _interleave(pieces, np.stack(lengths, axis=1))


def _interleave(pieces: list[np.ndarray], lengths: np.ndarray) -> bytes:
    """Row by row, the next segment of each piece: ``lengths[row, piece]`` bytes of ``pieces[piece]``."""
    source = np.concatenate(pieces)
    base = np.cumsum([0] + [len(piece) for piece in pieces[:-1]])
    starts = base + np.cumsum(lengths, axis=0) - lengths  # where each segment sits in ``source``
    flat_lengths = lengths.ravel()
    total = int(flat_lengths.sum())
    out_starts = np.cumsum(flat_lengths) - flat_lengths
    index = np.repeat(starts.ravel() - out_starts, flat_lengths) + np.arange(total)
    return source[index].tobytes()


def _field(values: pd.Series, pg_type: str) -> tuple[np.ndarray, np.ndarray]:
    """The column's payload bytes (NULLs have none) and each row's size in bytes, -1 for NULL."""
    missing = values.isna().to_numpy()
    fixed = FIXED.get(pg_type)
    if fixed is None:
        return _text(values, missing, jsonb=pg_type == "jsonb")
    if pg_type == "timestamp with time zone":
        instants = pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy("datetime64[us]")
        numbers: np.ndarray = (instants - PG_EPOCH).astype(np.int64)
    elif pg_type == "date":
        days = pd.to_datetime(values).to_numpy("datetime64[D]")
        numbers = (days - PG_EPOCH.astype("datetime64[D]")).astype(np.int64)
    elif pg_type == "boolean":
        numbers = values.fillna(False).astype(bool).to_numpy().astype(np.uint8)
    elif pg_type == "double precision":
        numbers = values.astype(float).to_numpy()
    else:
        numbers = values.astype("Int64").to_numpy(dtype=np.int64, na_value=0)  # range checked up front
    width = np.dtype(fixed).itemsize
    payload = numbers.astype(fixed).view(np.uint8).reshape(len(numbers), width)[~missing].ravel()
    return payload, np.where(missing, -1, width).astype(np.int64)


def _text(values: pd.Series, missing: np.ndarray, *, jsonb: bool) -> tuple[np.ndarray, np.ndarray]:
    present = values.to_numpy(dtype=object)[~missing]
    if jsonb:
        encoded = [b"\x01" + json.dumps(value).encode() for value in present]  # jsonb format version 1
    else:
        encoded = list(map(str.encode, map(str, present)))
    size = np.full(len(values), -1, dtype=np.int64)
    size[~missing] = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), size
