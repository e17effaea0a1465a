"""payload: tables as strict JSON for XCom, and back, without losing types."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd
import pytest

from veeam_efficiency import payload
from veeam_efficiency.pipeline import SCORECARD_KINDS, SESSION_KINDS
from veeam_efficiency.scorecards import score_window
from veeam_efficiency.settings import AnalysisSettings

KINDS = {
    "name": "text",
    "created": "time",
    "day": "date",
    "count": "int",
    "big": "int",
    "ratio": "float",
    "flag": "bool",
    "flags": "json",
}


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": pd.Series(["Job A", None, "Fileserver Wöchentlich"], dtype=object),
            "created": pd.to_datetime(
                [
                    datetime(2026, 11, 26, 1, 2, 3, 456789, tzinfo=UTC),
                    None,
                    datetime(2026, 11, 26, 2, 0, tzinfo=timezone(timedelta(hours=2))),  # 00:00Z
                ],
                utc=True,
            ),
            "day": [date(2026, 11, 26), date(2026, 1, 2), date(2024, 2, 29)],
            "count": np.array([0, 7, 30], dtype=np.int64),
            "big": np.array([2**62 + 1, 2**40, 0], dtype=np.int64),
            "ratio": [3.0303, np.nan, 0.4],
            "flag": [True, False, True],
            "flags": [{"CRITICAL_ANOMALIES": True}, {"HIGH_VARIANCE": False}, {}],
        }
    )


def test_to_columns_is_strict_json_with_none_for_missing() -> None:
    packed = payload.to_columns(_table(), KINDS)
    text = json.dumps(packed, allow_nan=False)
    assert json.loads(text) == packed
    assert all(type(values) is str for values in packed.values())  # Airflow passes a string whole
    columns = payload.column_lists(packed)
    assert columns["name"] == ["Job A", None, "Fileserver Wöchentlich"]
    assert columns["created"] == ["2026-11-26T01:02:03.456789Z", None, "2026-11-26T00:00:00.000000Z"]
    assert columns["day"] == ["2026-11-26", "2026-01-02", "2024-02-29"]
    assert columns["count"] == [0, 7, 30]
    assert all(type(value) is int for value in columns["count"])
    assert columns["big"] == [2**62 + 1, 2**40, 0]
    assert columns["ratio"] == [3.0303, None, 0.4]
    assert columns["flag"] == [True, False, True]
    assert all(type(value) is bool for value in columns["flag"])
    assert columns["flags"][0] == {"CRITICAL_ANOMALIES": True}


def test_only_the_listed_columns_travel() -> None:
    columns = payload.to_columns(_table().assign(extra=1), {"count": "int"})
    assert payload.column_lists(columns) == {"count": [0, 7, 30]}
    assert payload.column(columns, "count") == [0, 7, 30]


def test_an_infinite_factor_travels_inside_strict_json() -> None:
    """A column's text may hold Infinity (JSON has none); the XCom value around it stays strict JSON."""
    frame = pd.DataFrame({"ratio": [np.inf, -np.inf, np.nan, 1.5]})
    columns = payload.to_columns(frame, {"ratio": "float"})
    json.dumps(columns, allow_nan=False)
    back = payload.from_columns(columns, {"ratio": "float"})["ratio"].tolist()
    assert back[:2] == [np.inf, -np.inf] and np.isnan(back[2]) and back[3] == 1.5


def _assert_round_trip(back: pd.DataFrame) -> None:
    table = _table()
    assert list(back.columns) == list(KINDS)
    assert back["name"].iloc[0] == "Job A"
    assert pd.isna(back["name"].iloc[1])
    assert str(back["created"].dtype).startswith("datetime64") and str(back["created"].dt.tz) == "UTC"
    assert back["created"].iloc[0] == table["created"].iloc[0]  # microseconds kept
    assert pd.isna(back["created"].iloc[1])
    assert back["created"].iloc[2] == pd.Timestamp("2026-11-26T00:00:00Z")
    assert back["day"].tolist() == [date(2026, 11, 26), date(2026, 1, 2), date(2024, 2, 29)]
    assert back["count"].dtype == np.int64
    assert back["count"].tolist() == [0, 7, 30]
    assert back["big"].tolist() == [2**62 + 1, 2**40, 0]  # no float detour
    assert back["ratio"].dtype == float
    assert back["ratio"].iloc[0] == 3.0303
    assert np.isnan(back["ratio"].iloc[1])
    assert back["flag"].dtype == bool
    assert back["flag"].tolist() == [True, False, True]
    assert back["flags"].tolist() == [{"CRITICAL_ANOMALIES": True}, {"HIGH_VARIANCE": False}, {}]


def test_columns_round_trip_through_json() -> None:
    text = json.dumps(payload.to_columns(_table(), KINDS), allow_nan=False)
    _assert_round_trip(payload.from_columns(json.loads(text), KINDS))


def test_records_round_trip_through_json() -> None:
    packed = payload.to_records(_table(), KINDS)
    assert type(packed) is str  # Airflow passes a string whole
    records = payload.records(packed)
    assert len(records) == 3
    assert records[1] == {
        "name": None,
        "created": None,
        "day": "2026-01-02",
        "count": 7,
        "big": 2**40,
        "ratio": None,
        "flag": False,
        "flags": {"HIGH_VARIANCE": False},
    }
    text = json.dumps(records, allow_nan=False)
    _assert_round_trip(payload.from_records(json.loads(text), KINDS))


def test_int_column_with_missing_value_becomes_nullable() -> None:
    back = payload.from_columns({"count": [1, None, 3]}, {"count": "int"})
    assert str(back["count"].dtype) == "Int64"
    assert back["count"].iloc[0] == 1
    assert pd.isna(back["count"].iloc[1])


def test_from_records_fills_absent_keys_with_missing() -> None:
    back = payload.from_records([{"count": 1, "ratio": 0.5}], {"count": "int", "ratio": "float", "other": "float"})
    assert list(back.columns) == ["count", "ratio", "other"]
    assert np.isnan(back["other"].iloc[0])
    empty = payload.from_records([], {"count": "int", "created": "time"})
    assert empty.empty
    assert list(empty.columns) == ["count", "created"]


def test_from_columns_ignores_kinds_without_a_column() -> None:
    back = payload.from_columns({"count": [1]}, {"count": "int", "ratio": "float"})
    assert list(back.columns) == ["count"]


def test_missing_date_travels_as_none() -> None:
    frame = pd.DataFrame({"day": pd.Series([date(2026, 11, 26), None], dtype=object)})
    columns = payload.to_columns(frame, {"day": "date"})
    json.dumps(columns, allow_nan=False)
    assert payload.column(columns, "day") == ["2026-11-26", None]
    back = payload.from_columns(columns, {"day": "date"})
    assert back["day"].iloc[0] == date(2026, 11, 26)
    assert pd.isna(back["day"].iloc[1])


def _scorecards() -> pd.DataFrame:
    start = datetime(2026, 10, 28, tzinfo=UTC)
    rows: list[dict[str, Any]] = []
    for job, raws in (("A", [50, 40] * 4), ("B", [50] * 6)):
        for i, raw in enumerate(raws):
            rows.append(
                {
                    "session_id": f"{job}{i}",
                    "job_id": job,
                    "job_name": f"Job {job}",
                    "algorithm": "Increment",
                    "creation_time": start + timedelta(days=i),
                    "data_size_bytes": 100 * 2**30,
                    "dedup_ratio_raw": 100,
                    "compress_ratio_raw": raw,
                    "combined_ratio": 100 / raw,
                    "excluded_reason": None,
                }
            )
    frame = pd.DataFrame(rows)
    frame["creation_time"] = pd.to_datetime(frame["creation_time"], utc=True)
    frame["excluded_reason"] = frame["excluded_reason"].astype(object)
    return score_window(
        frame,
        ["A", "B"],
        AnalysisSettings(),
        vbr_host="h",
        window_start=start,
        window_end=start + timedelta(days=30),
        analysis_date=date(2026, 11, 26),
    ).scorecards


def test_real_scorecards_are_strict_json_and_round_trip() -> None:
    cards = _scorecards()
    kinds = {name: kind for name, kind in SCORECARD_KINDS.items() if name in cards.columns}
    records = payload.records(payload.to_records(cards, kinds))
    text = json.dumps(records, allow_nan=False)  # job B is constant: NaN p-value; the host row's p is NaN
    back = payload.from_records(json.loads(text), kinds)
    assert back["job_id"].tolist() == ["A", "B", "*"]
    assert back["analysis_date"].tolist() == [date(2026, 11, 26)] * 3
    assert back["window_start"].iloc[0] == pd.Timestamp("2026-10-28T00:00:00Z")
    assert back["sessions_scored"].tolist() == [8, 6, 14]
    assert back["sessions_scored"].dtype == np.int64
    assert np.isnan(back["trend_p_value"].iloc[2])
    assert back["overall_score"].to_numpy() == pytest.approx(cards["overall_score"].to_numpy())
    assert back["quality_flags"].tolist() == cards["quality_flags"].tolist()
    assert back["excluded_by_reason"].iloc[0] == {"failed": 0, "running": 0, "no_data": 0, "implausible_ratio": 0}


def test_session_kinds_round_trip() -> None:
    frame = pd.DataFrame(
        {
            "session_id": ["s1", "s2"],
            "job_id": ["j", "j"],
            "job_name": ["Job", "Job"],
            "job_type": ["Backup", "Backup"],
            "object_name": [None, "srv-01"],
            "algorithm": ["Full", "Increment"],
            "result": ["Success", "Failed"],
            "is_retry": [False, True],
            "creation_time": pd.to_datetime(["2026-11-26T01:00:00Z", "2026-11-26T02:00:00Z"], utc=True),
            "end_time": pd.to_datetime(["2026-11-26T01:30:00Z", None], utc=True),
            "data_size_bytes": np.array([2**45, 0], dtype=np.int64),
            "backup_size_bytes": np.array([2**40, 0], dtype=np.int64),
            "read_size_bytes": np.array([2**44, 0], dtype=np.int64),
            "transferred_size_bytes": np.array([2**41, 0], dtype=np.int64),
            "dedup_ratio_raw": np.array([96, 0], dtype=np.int64),
            "compress_ratio_raw": np.array([33, 191073], dtype=np.int64),
            "dedup_ratio": [100 / 96, np.nan],
            "compression_ratio": [100 / 33, 100 / 191073],
            "combined_ratio": [100 / 96 * 100 / 33, np.nan],
            "excluded_reason": pd.Series([None, "failed"], dtype=object),
        }
    )
    columns = payload.to_columns(frame, SESSION_KINDS)
    back = payload.from_columns(json.loads(json.dumps(columns, allow_nan=False)), SESSION_KINDS)
    assert back["end_time"].isna().tolist() == [False, True]
    assert back["data_size_bytes"].tolist() == [2**45, 0]
    assert back["is_retry"].tolist() == [False, True]
    assert back["dedup_ratio"].iloc[0] == pytest.approx(1.0416667)
    assert np.isnan(back["combined_ratio"].iloc[1])
    assert pd.isna(back["excluded_reason"].iloc[0])
    assert back["excluded_reason"].iloc[1] == "failed"
