"""Tables as XCom-friendly JSON: columns of plain lists, ISO times, ``None`` for missing.

XCom values must be JSON that PostgreSQL's ``json`` type accepts, so NaN and
timestamps never travel as such; the column kinds of the registry
(:mod:`veeam_efficiency.tables`, ``Table.kinds``) say how each column comes back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def to_columns(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, list[Any]]:
    """``{column: [values...]}`` for the columns in ``kinds`` (JSON-safe)."""
    out: dict[str, list[Any]] = {}
    for name, kind in kinds.items():
        values = frame[name]
        if kind == "time":
            text = pd.to_datetime(values, utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out[name] = text.astype(object).where(values.notna(), None).tolist()
        elif kind == "date":
            text = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
            out[name] = text.astype(object).where(values.notna(), None).tolist()
        else:
            out[name] = values.astype(object).where(values.notna(), None).tolist()
    return out


def to_records(frame: pd.DataFrame, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """Row dicts, for small tables a person may read in the XCom view (scorecards)."""
    columns = to_columns(frame, kinds)
    return [dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def from_columns(columns: dict[str, list[Any]], kinds: dict[str, str]) -> pd.DataFrame:
    """The inverse of :func:`to_columns`: typed columns, NaN/NaT for missing."""
    frame = pd.DataFrame({name: columns[name] for name in kinds if name in columns})
    return _typed(frame, kinds)


def from_records(records: list[dict[str, Any]], kinds: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(kinds))
    return _typed(frame, kinds)


def _typed(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    for name in frame.columns:
        kind = kinds[name]
        if kind == "time":
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        elif kind == "float":
            frame[name] = frame[name].astype(float)
        elif kind == "int":
            frame[name] = frame[name].astype("Int64") if frame[name].isna().any() else frame[name].astype(np.int64)
        elif kind == "bool":
            frame[name] = frame[name].astype(bool)
        elif kind == "date":
            frame[name] = pd.to_datetime(frame[name]).dt.date
        else:
            frame[name] = frame[name].astype(object)
    return frame
