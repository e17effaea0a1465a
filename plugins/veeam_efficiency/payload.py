"""Tables as XCom-friendly JSON in a string: each column one JSON array, or the rows one array of objects.

NaN and timestamps never travel as such (``None``, ISO text); the column kinds of the
registry (:mod:`veeam_efficiency.tables`, ``Table.kinds``) say how each column comes back.

A table travels as strings, not lists of values: Airflow walks every value of an XCom in
Python (serialisation and deserialisation; when tables were still tasks' arguments, their
rendered fields and secret masking too), which for a million sessions, or ten thousand
scorecards, took longer than the analysis. A string it passes whole, and the XCom value around
it is strict JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def to_columns(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, str]:
    """``{column: "[values...]"}`` for the columns in ``kinds``: each a JSON array as text (:func:`column_lists`)."""
    return {name: json.dumps(values) for name, values in _lists(frame, kinds).items()}


def column_lists(columns: Mapping[str, str | list[Any]]) -> dict[str, list[Any]]:
    """``{column: [values...]}`` of what :func:`to_columns` gives (lists pass as they are)."""
    return {name: json.loads(values) if isinstance(values, str) else values for name, values in columns.items()}


def column(columns: Mapping[str, str | list[Any]], name: str) -> list[Any]:
    """One column's values of what :func:`to_columns` gives."""
    return column_lists({name: columns[name]})[name]


def _lists(frame: pd.DataFrame, kinds: dict[str, str]) -> dict[str, list[Any]]:
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


def to_records(frame: pd.DataFrame, kinds: dict[str, str]) -> str:
    """Row objects as one JSON array in a string, for tables a person may read in the XCom view (scorecards)."""
    columns = _lists(frame, kinds)
    return json.dumps([dict(zip(columns, row, strict=True)) for row in zip(*columns.values(), strict=True)])


def records(rows: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The row dicts of what :func:`to_records` gives (a list passes as it is)."""
    return json.loads(rows) if isinstance(rows, str) else rows


def from_columns(columns: Mapping[str, str | list[Any]], kinds: dict[str, str]) -> pd.DataFrame:
    """The inverse of :func:`to_columns` (or of :func:`column_lists`): typed columns, NaN/NaT for missing."""
    frame = pd.DataFrame(column_lists({name: columns[name] for name in kinds if name in columns}))
    return _typed(frame, kinds)


def from_records(rows: str | list[dict[str, Any]], kinds: dict[str, str]) -> pd.DataFrame:
    """The inverse of :func:`to_records` (or of :func:`records`): typed columns, missing keys as missing values."""
    frame = pd.DataFrame.from_records(records(rows), columns=list(kinds))
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
        elif kind == "bool":  # a missing flag (a job setting the server did not report) stays missing
            frame[name] = frame[name].astype("boolean") if frame[name].isna().any() else frame[name].astype(bool)
        elif kind == "date":
            frame[name] = pd.to_datetime(frame[name]).dt.date
        else:
            frame[name] = frame[name].astype(object)
    return frame
