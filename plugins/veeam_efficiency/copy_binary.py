"""A table in PostgreSQL's binary ``COPY`` format, built with numpy, a column at a time.

The text format costs a Python string per value on our side and parsing every
timestamp and float on the server's. Binary needs neither: fixed-width values are
written as big-endian numpy records, repeated text is encoded once per distinct value,
and each row is joined from its fields' bytes in C, never assembled in Python.
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
    """A type this writer does not encode, or an integer outside its column's range: the load fails.

    The registry's types are all encodable (``tests/unit/test_tables.py``) and the contract
    bounds every collected integer, so this is a bug, never a fallback to another format.
    """


def supported(pg_type: str) -> bool:
    return pg_type in FIXED or pg_type in ("text", "jsonb") or pg_type.startswith("character")


def binary_copy(frame: pd.DataFrame, pg_types: dict[str, str], rows: int = 50_000) -> tuple[list[str], Iterator[bytes]]:
    """``frame``'s columns ``pg_types`` (name -> PostgreSQL type) as ``COPY ... (FORMAT BINARY)`` data.

    Returns the column order the data uses (name it in the ``COPY`` statement) and the
    chunks. Raises :class:`NotBinaryCopyable` at once, before any data is produced, for
    a type it cannot encode or an integer outside its column's range.
    """
    unsupported = [f"{name} {kind}" for name, kind in pg_types.items() if not supported(kind)]
    if unsupported:
        raise NotBinaryCopyable(f"no binary encoding for {unsupported}")
    for name, pg_type in pg_types.items():
        limit = INT_RANGE.get(pg_type)
        if limit is None:
            continue
        values = frame[name].dropna()
        if len(values) and (values.min() < -limit or values.max() >= limit):
            raise NotBinaryCopyable(f"{name}: a value outside the range of {pg_type}")
    # fixed-width columns without NULLs first: together they are one constant-width block per row
    dense = [name for name, pg_type in pg_types.items() if pg_type in FIXED and frame[name].notna().all()]
    order = dense + [name for name in pg_types if name not in dense]
    return order, _chunks(frame, {name: pg_types[name] for name in order}, len(dense), rows)


def _chunks(frame: pd.DataFrame, pg_types: dict[str, str], dense: int, rows: int) -> Iterator[bytes]:
    yield HEADER
    for start in range(0, len(frame), rows):
        yield encode_rows(frame.iloc[start : start + rows], pg_types, dense)
    yield TRAILER


def encode_rows(part: pd.DataFrame, pg_types: dict[str, str], dense: int) -> bytes:
    """Rows of ``part`` (no header or trailer): a field count, then length + bytes per field.

    The first ``dense`` columns of ``pg_types`` are fixed-width and never NULL: they are
    written as one packed big-endian record per row; every other field becomes one bytes
    object per row, and each row is joined in C (``bytes.join``), never assembled in Python.
    """
    names = list(pg_types)
    layout = [("count", ">i2")]
    for name in names[:dense]:
        layout += [(f"{name}:size", ">i4"), (name, FIXED[pg_types[name]])]
    block = np.empty(len(part), dtype=np.dtype(layout))
    block["count"] = len(names)
    for name in names[:dense]:
        block[f"{name}:size"] = block.dtype[name].itemsize
        block[name] = _numbers(part[name], pg_types[name])
    fields = [block.view(f"V{block.dtype.itemsize}").tolist()]
    fields += [_fields(part[name], pg_types[name]) for name in names[dense:]]
    return b"".join(map(b"".join, zip(*fields, strict=True)))


NULL = (-1).to_bytes(4, "big", signed=True)


def _fields(values: pd.Series, pg_type: str) -> list[bytes]:
    """One bytes object per row: the field's length, then its bytes; a NULL is the length -1 alone."""
    fixed = FIXED.get(pg_type)
    if fixed is None:
        array = values.to_numpy(dtype=object)
        return _text_fields(array, pd.isna(array), jsonb=pg_type == "jsonb")
    missing = values.isna().to_numpy()
    record = np.empty(len(values), dtype=[("size", ">i4"), ("value", fixed)])
    record["size"] = np.dtype(fixed).itemsize
    record["value"] = _numbers(values, pg_type, missing)
    encoded = record.view(f"V{record.dtype.itemsize}").tolist()
    if missing.any():
        fields = np.array(encoded, dtype=object)
        fields[missing] = NULL
        return list(fields)
    return encoded


def _text_fields(values: np.ndarray, missing: np.ndarray, *, jsonb: bool) -> list[bytes]:
    if jsonb:
        encoded = [_text_field(b"\x01" + json.dumps(value).encode()) for value in values[~missing]]  # version 1
    else:
        sample = values[:: max(1, len(values) // 1000)]
        if len(set(sample)) * 2 < len(sample):  # repeated text (job ids, names, results): encode each once
            codes, distinct = pd.factorize(values)
            fields = np.array([NULL, *(_text_field(str(text).encode()) for text in distinct)], dtype=object)
            return list(fields[codes + 1])
        payload = list(map(str.encode, map(str, values[~missing])))
        sizes = np.fromiter(map(len, payload), dtype=np.int64, count=len(payload)).astype(">i4")
        encoded = list(map(bytes.__add__, sizes.view("V4").tolist(), payload))
    if not missing.any():
        return encoded
    fields = np.full(len(values), NULL, dtype=object)
    fields[~missing] = encoded
    return list(fields)


def _text_field(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def _numbers(values: pd.Series, pg_type: str, missing: np.ndarray | None = None) -> np.ndarray:
    """A fixed-width column as numbers in its binary form's unit (0 where NULL)."""
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
    if missing is not None and missing.any():
        numbers = np.where(missing, 0, numbers)
    return numbers
