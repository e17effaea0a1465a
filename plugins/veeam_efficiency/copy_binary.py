"""A table in PostgreSQL's binary ``COPY`` format, built with numpy, a few pieces per row.

The text format costs a Python string per value on our side and parsing every
timestamp and float on the server's. Binary needs neither. Python's cost is per object,
so each row is made of three pieces, joined in C (``bytes.join``), never assembled in
Python: its fixed-width fields as one packed big-endian record (rows sharing a pattern
of NULLs share a layout), its text fields that are mostly distinct (session ids) one
piece each, and its repeated text fields (host, job, result, reasons) as one piece per
distinct combination, encoded once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from itertools import chain
from typing import Any, NamedTuple

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
    formats = {name: FIXED[pg_type] for name, pg_type in pg_types.items() if pg_type in FIXED}
    texts = [name for name in pg_types if name not in formats and pg_types[name] != "jsonb"]
    repeated = [name for name in texts if _repeated(frame[name], rows)]
    encoded = {}
    for name in texts:  # e.g. session ids (GUIDs): fields of one width go into the packed record
        if name not in repeated and (array := _ascii_width(frame[name])) is not None:
            formats[name], encoded[name] = f"S{array.dtype.itemsize}", array
    dense = [name for name in formats if name in encoded or frame[name].notna().all()]
    order = dense + [name for name in formats if name not in dense]
    order += [name for name in pg_types if name not in formats and name not in repeated] + repeated
    layout = Layout({name: pg_types[name] for name in order}, formats, len(order) - len(repeated))
    return order, _chunks(frame, layout, encoded, rows)


class Layout(NamedTuple):
    """The columns in data order: the packed ones (``formats``: numpy type of each), other text, then repeated text."""

    pg_types: dict[str, str]
    formats: dict[str, str]
    distinct: int


def _ascii_width(values: pd.Series) -> np.ndarray | None:
    """The values as bytes of one width when all are ASCII, of one length and never NULL; else None."""
    array = values.to_numpy(dtype=object)
    try:
        encoded = array.astype("S")  # numpy refuses non-ASCII text
    except UnicodeEncodeError:
        return None
    width = encoded.dtype.itemsize
    if not len(array) or not width or not (np.char.str_len(encoded) == width).all():
        return None
    spelled_like_null = np.isin(encoded, [b"None", b"nan", b"NaT", b"<NA>"])  # how astype spells a NULL
    if spelled_like_null.any() and pd.isna(array[spelled_like_null]).any():
        return None
    return encoded


def _repeated(values: pd.Series, rows: int) -> bool:
    """Whether a text column repeats its values in a chunk (job ids, names, results): encoded once per distinct value."""
    chunk = values.iloc[:rows]
    return chunk.nunique(dropna=False) * 2 < len(chunk)


def _chunks(frame: pd.DataFrame, layout: Layout, encoded: dict[str, np.ndarray], rows: int) -> Iterator[bytes]:
    yield HEADER
    names = list(layout.pg_types)
    repeated = _repeated_fields(frame, names[layout.distinct :]) if layout.distinct < len(names) else None
    for start in range(0, len(frame), rows):
        window = slice(start, start + rows)
        texts = {name: array[window] for name, array in encoded.items()}
        yield encode_rows(frame.iloc[window], layout, texts, None if repeated is None else repeated[window])
    yield TRAILER


def encode_rows(part: pd.DataFrame, layout: Layout, texts: dict[str, np.ndarray], repeated: np.ndarray | None) -> bytes:
    """Rows of ``part`` (no header or trailer): a field count, then length + bytes per field.

    ``texts`` holds the rows' text of one width, already bytes; ``repeated`` their repeated
    text fields, one piece per row (``_repeated_fields``).
    """
    names = list(layout.pg_types)
    packed = len(layout.formats)
    pieces: list[Any] = [_fixed_records(part, names[:packed], layout, texts)]
    for name in names[packed : layout.distinct]:
        array = part[name].to_numpy(dtype=object)
        pieces.append(_text_fields(array, pd.isna(array), jsonb=layout.pg_types[name] == "jsonb"))
    if repeated is not None:
        pieces.append(repeated)
    return b"".join(chain.from_iterable(zip(*pieces, strict=True)))


NULL = (-1).to_bytes(4, "big", signed=True)


def _fixed_records(part: pd.DataFrame, names: list[str], layout: Layout, texts: dict[str, np.ndarray]) -> list[bytes]:
    """Per row: the field count and every packed field, one record (a NULL is the length -1 alone).

    Rows with the same columns NULL share a record layout: one numpy record array per pattern.
    """
    # text of one width is never NULL (_ascii_width)
    missing = {name: np.zeros(len(part), bool) if name in texts else part[name].isna().to_numpy() for name in names}
    values = {
        name: texts[name] if name in texts else _numbers(part[name], layout.pg_types[name], missing[name])
        for name in names
    }
    nullable = [name for name in names if missing[name].any()]
    pattern = np.zeros(len(part), dtype=np.int64)
    for bit, name in enumerate(nullable):
        pattern |= missing[name].astype(np.int64) << bit
    records = np.empty(len(part), dtype=object)
    for code in np.unique(pattern):
        rows = np.flatnonzero(pattern == code)
        null = {name for bit, name in enumerate(nullable) if code >> bit & 1}
        dtype: list[tuple[str, str]] = [("count", ">i2")]
        for name in names:
            dtype += [(f"{name}:size", ">i4")] + ([] if name in null else [(name, layout.formats[name])])
        block = np.empty(len(rows), dtype=np.dtype(dtype))
        block["count"] = len(layout.pg_types)
        for name in names:
            block[f"{name}:size"] = -1 if name in null else block.dtype[name].itemsize
            if name not in null:
                block[name] = values[name][rows]
        records[rows] = block.view(f"V{block.dtype.itemsize}").tolist()
    return list(records)


def _repeated_fields(part: pd.DataFrame, names: list[str]) -> np.ndarray:
    """Per row: the repeated text fields ``names`` as one piece, encoded once per distinct combination (whole frame)."""
    combination = np.zeros(len(part), dtype=np.int64)
    columns = []
    for name in names:
        codes, distinct = pd.factorize(part[name].to_numpy(dtype=object))  # a NULL is -1
        fields = np.array([NULL, *(_text_field(str(text).encode()) for text in distinct)], dtype=object)
        columns.append((codes + 1, fields))
        combination = pd.factorize(combination * (len(distinct) + 1) + codes + 1)[0]
    first = np.unique(combination, return_index=True)[1]  # a row of each combination, in code order
    joined = list(map(b"".join, zip(*(fields[codes[first]] for codes, fields in columns), strict=True)))
    return np.array(joined, dtype=object)[combination]


def _text_fields(values: np.ndarray, missing: np.ndarray, *, jsonb: bool) -> list[bytes]:
    if jsonb:
        encoded = [_text_field(b"\x01" + json.dumps(value).encode()) for value in values[~missing]]  # version 1
    else:
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
