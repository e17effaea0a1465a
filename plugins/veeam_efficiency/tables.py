"""The column registry: every table the package reads or writes, declared once.

Each :class:`Column` says its name, kind (how it travels: ``text``, ``int``, ``float``,
``bool``, ``time``, ``date``, ``json``), PostgreSQL type (as ``format_type`` prints it)
and nullability. Everything else derives from here: the collector contract
(:mod:`~veeam_efficiency.contract` builds its ``Session`` record from
:data:`SESSION_RECORD`), columnar parsing, the XCom column kinds (:mod:`~veeam_efficiency.payload`),
the writer's column lists and binary ``COPY`` types (:mod:`~veeam_efficiency.storage`).
``tests/storage/test_registry.py`` holds the database tables against
``include/sql/schema.sql``. Adding a column touches this file, a migration in
``schema.sql`` and the code that computes the value, nothing else.

No pandas, no Airflow: the DAG file imports the table names at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["text", "int", "float", "bool", "time", "date", "json"]

SCHEMA = "feature3"
HISTORY = "storage_efficiency_history"
SCORECARDS = "metrics_storage_efficiency"
UNSCORED = "unscored_jobs"
JOB_SETTINGS = "job_settings"
COLLECTION_LOG = "collection_log"


@dataclass(frozen=True)
class Column:
    """One column. ``identifier``: an opaque key (``COLLATE "C"``; 1-200 characters in the contract).
    ``values``: the only values the collector may send (a ``Literal`` in the contract).
    ``max_length``: a text's limit in the contract (default 10,000 characters).
    ``optional``: a collector may leave the field out (it came with a later contract version):
    read as null."""

    name: str
    kind: Kind
    pg_type: str
    nullable: bool = False
    identifier: bool = False
    values: tuple[str | int, ...] = ()
    max_length: int | None = None
    optional: bool = False


@dataclass(frozen=True)
class Table:
    """Columns in table order; ``name`` is ``None`` for a table that only travels through XCom."""

    name: str | None
    columns: tuple[Column, ...]
    key: tuple[str, ...] = ()
    # Columns that say which run wrote a row, not what it says: an upsert that would change
    # only these leaves the row alone (no new row version, no WAL; storage._merge).
    provenance: tuple[str, ...] = ()
    # Derived values that move a little with every window (a session's standard score): only
    # whether they are null decides if a row changed; otherwise the row keeps the value of the
    # run that last changed it, and a day's run does not rewrite most of the history for them.
    drifting: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @property
    def kinds(self) -> dict[str, Kind]:
        return {column.name: column.kind for column in self.columns}

    @property
    def pg_types(self) -> dict[str, str]:
        return {column.name: column.pg_type for column in self.columns}

    def column(self, name: str) -> Column:
        return next(column for column in self.columns if column.name == name)


def _text(name: str, **options: object) -> Column:
    return Column(name, "text", "text", **options)  # type: ignore[arg-type]


def _key(name: str) -> Column:
    return Column(name, "text", "text", identifier=True)


def _float(name: str, nullable: bool = False) -> Column:
    return Column(name, "float", "double precision", nullable=nullable)


def _int(name: str, pg_type: str = "integer") -> Column:
    return Column(name, "int", pg_type)


def _bool(name: str, nullable: bool = False) -> Column:
    return Column(name, "bool", "boolean", nullable=nullable)


def _time(name: str, nullable: bool = False) -> Column:
    return Column(name, "time", "timestamp with time zone", nullable=nullable)


VBR_HOST = _key("vbr_host")
JOB_ID = _key("job_id")
SESSION_ID = _key("session_id")
ANALYSIS_DATE = Column("analysis_date", "date", "date")

# What the collector reports per session (the contract's ``Session`` record, in this order).
SESSION_RECORD = Table(
    None,
    (
        SESSION_ID,
        JOB_ID,
        _text("job_name"),
        _text("job_type"),
        _text("object_name", nullable=True, optional=True),  # v2: the machine of a per-machine child session
        _text("algorithm", values=("Full", "Increment", "Synthetic")),
        _text("result", values=("Success", "Warning", "Failed")),
        _bool("is_retry"),
        _time("creation_time"),
        _time("end_time", nullable=True),
        _int("data_size_bytes", "bigint"),
        _int("backup_size_bytes", "bigint"),
        _int("read_size_bytes", "bigint"),
        _int("transferred_size_bytes", "bigint"),
        _int("dedup_ratio_raw"),
        _int("compress_ratio_raw"),
    ),
    key=("session_id",),
)

# Veeam's raw percentages as factors (``sessions.add_factors``), and why a session is not scored.
FACTORS = (_float("dedup_ratio", True), _float("compression_ratio", True), _float("combined_ratio", True))
EXCLUDED_REASON = _text("excluded_reason", nullable=True)

# The window's sessions as ``validate`` hands them on.
WINDOW_SESSIONS = Table(None, (*SESSION_RECORD.columns, *FACTORS, EXCLUDED_REASON), key=("session_id",))

# Each scored session's anomaly verdict, as ``analyze`` hands it on.
SESSION_ANOMALIES = Table(
    None,
    (
        SESSION_ID,
        Column("is_anomaly", "bool", "boolean"),
        Column("is_critical_anomaly", "bool", "boolean"),
        _float("anomaly_score", True),
        _text("anomaly_reason", nullable=True),
    ),
    key=("session_id",),
)

# Every session a run collected, one row per (vbr_host, session_id), scored or not; one
# partition per month (include/sql/schema.sql: ensure_history_partitions, drop_history_partitions).
HISTORY_TABLE = Table(
    HISTORY,
    (
        VBR_HOST,
        SESSION_ID,
        _text("vbr_version"),
        _time("collected_at"),
        *(column for column in SESSION_RECORD.columns if column.name != "session_id"),
        *FACTORS,
        EXCLUDED_REASON,
        SESSION_ANOMALIES.column("is_anomaly"),
        SESSION_ANOMALIES.column("anomaly_score"),
        SESSION_ANOMALIES.column("anomaly_reason"),
        ANALYSIS_DATE,
    ),
    # partitioned by month of creation_time, which PostgreSQL wants in the key: a session's
    # creation time never changes, so (vbr_host, session_id) stays unique in practice
    key=("vbr_host", "session_id", "creation_time"),
    provenance=("vbr_version", "collected_at", "analysis_date"),
    drifting=("anomaly_score",),
)

# The grade in context (:mod:`~veeam_efficiency.context_scores`, docs/context-grade.md), added to
# tables made before it by ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``: so NULL on rows written
# before it, except ``recommendations`` (``'[]'`` by default).
CONTEXT_COLUMNS = (
    _float("context_expected_dedup_factor", True),
    _float("context_expected_compression_factor", True),
    _float("context_score", True),
    Column("context_grade", "text", "character(1)", nullable=True),
    _float("attainable_potential_gb", True),
    _float("attainable_annual_savings_usd", True),
    Column("recommendations", "json", "jsonb"),
    _time("change_point_at", nullable=True),
    _float("change_point_shift", True),
)

# One scorecard per job per day, plus one roll-up row per VBR host (job_id '*', scope 'host').
SCORECARD_TABLE = Table(
    SCORECARDS,
    (
        VBR_HOST,
        JOB_ID,
        ANALYSIS_DATE,
        _text("scope"),
        _text("job_name"),
        _time("window_start"),
        _time("window_end"),
        _int("sessions_in_window"),
        _int("sessions_scored"),
        _int("sessions_excluded"),
        Column("excluded_by_reason", "json", "jsonb"),
        _int("anomalous_sessions"),
        _int("critical_anomalies"),
        _float("data_scored_bytes"),
        _float("dedup_factor"),
        _float("compression_factor"),
        _float("combined_factor"),
        _float("coefficient_of_variation", True),
        _float("dedup_score"),
        _float("compression_score"),
        _float("trend_score"),
        _float("consistency_score"),
        _float("anomaly_score"),
        _float("overall_score"),
        Column("grade", "text", "character(1)"),
        _text("efficiency_rating"),
        _text("trend_classification"),
        _float("trend_p_value", True),
        _float("trend_change", True),
        _float("raw_daily_gb"),
        _float("current_daily_gb"),
        _float("target_daily_gb"),
        _float("optimization_potential_gb"),
        _float("projected_monthly_savings_gb"),
        _float("annual_savings_usd"),
        Column("quality_flags", "json", "jsonb"),
        *CONTEXT_COLUMNS,
        _text("dag_run_id", nullable=True),  # the Airflow run that wrote the scorecard (the view links to it)
    ),
    key=("vbr_host", "job_id", "analysis_date"),
    provenance=("dag_run_id",),
)

# Jobs a run saw but could not score, one row per job per day (replaced like the scorecards).
UNSCORED_TABLE = Table(
    UNSCORED,
    (
        VBR_HOST,
        JOB_ID,
        ANALYSIS_DATE,
        _text("job_name"),
        _int("sessions_found"),
        _int("sessions_needed"),
        _text("reason"),
    ),
    key=("vbr_host", "job_id", "analysis_date"),
)

# Contract v2: a job's target repository as the collector reports it (``jobs[].repository``); a
# scale-out repository is described by itself (flags null where its extents differ).
REPOSITORY_RECORD = Table(
    None,
    (
        Column("repository_id", "text", "text", identifier=True),
        _text("name"),
        _text("type", nullable=True, max_length=200),  # Veeam's type name as is: DataDomain, WinLocal, ...
        *(
            _bool(name, nullable=True)
            for name in (
                "dedup_appliance",
                "decompress_before_storing",
                "align_blocks",
                "fast_clone",
                "object_storage",
                "scale_out",
            )
        ),
    ),
    key=("repository_id",),
)

# Contract v2: one job's storage settings as the server knows them (``jobs``; null: unknown),
# with its ``repository`` (a REPOSITORY_RECORD or null) nested.
JOB_RECORD = Table(
    None,
    (
        JOB_ID,
        _text("job_name"),
        _text("job_type", nullable=True, max_length=200),
        _text(
            "compression_level", nullable=True, values=("None", "DedupeFriendly", "Optimal", "High", "Extreme", "Auto")
        ),
        Column("block_size_kb", "int", "integer", nullable=True, values=(256, 512, 1024, 4096, 8192)),
        _bool("inline_dedup", nullable=True),
        _bool("encryption", nullable=True),
    ),
    key=("job_id",),
)

# A repository field's column in job_settings: flattened, and null when the repository is unknown.
REPOSITORY_COLUMNS = {"repository_id": "repository_id", "name": "repository_name", "type": "repository_type"}


def _repository_column(column: Column) -> Column:
    name = REPOSITORY_COLUMNS.get(column.name, column.name)
    return replace(column, name=name, nullable=True, identifier=False, max_length=None)


# What the server said about each job's storage on each day (contract v2 ``jobs``), one row per
# job per day, replaced like the scorecards; a version 1 run leaves it alone.
JOB_SETTINGS_TABLE = Table(
    JOB_SETTINGS,
    (
        VBR_HOST,
        JOB_ID,
        ANALYSIS_DATE,
        *(column for column in JOB_RECORD.columns if column.name != "job_id"),
        *map(_repository_column, REPOSITORY_RECORD.columns),
    ),
    key=("vbr_host", "job_id", "analysis_date"),
)

# Each interval of a VBR server's sessions a run collected, and when the server answered
# (:mod:`~veeam_efficiency.collection_plan`): what incremental collection does not ask again.
# Written with the history, in the same transaction, so it never claims sessions not stored.
COLLECTION_LOG_TABLE = Table(
    COLLECTION_LOG,
    (
        VBR_HOST,
        _time("interval_start"),
        _time("interval_end"),
        _text("collection_target"),  # how runs reach the server: replay file, vbr_hosts entry or ssh_conn_id=...
        _time("collected_at"),  # the server's clock: sessions created recheck_days before it are final
        _int("sessions_returned"),
        _text("dag_run_id", nullable=True),
    ),
    key=("vbr_host", "interval_start", "interval_end"),
    provenance=("dag_run_id",),
)

# The tables the DAG writes, in the order a run writes them.
WRITTEN = (HISTORY_TABLE, SCORECARD_TABLE, UNSCORED_TABLE, JOB_SETTINGS_TABLE, COLLECTION_LOG_TABLE)

# The keys of a scorecard's ``quality_flags`` (what the downstream risk model reads), in order:
# those the scoring sets (:mod:`~veeam_efficiency.scorecards`), then those of the grade in context.
CRITICAL_ANOMALIES = "CRITICAL_ANOMALIES"
DEGRADING_TREND = "DEGRADING_TREND"
HIGH_VARIANCE = "HIGH_VARIANCE"
SCORE_FLAGS = (CRITICAL_ANOMALIES, DEGRADING_TREND, HIGH_VARIANCE)
MISCONFIGURED = "MISCONFIGURED"  # a critical recommendation
LEVEL_SHIFT = "LEVEL_SHIFT"  # the combined factor dropped to a new level
CONTEXT_FLAGS = (MISCONFIGURED, LEVEL_SHIFT)
QUALITY_FLAGS = (*SCORE_FLAGS, *CONTEXT_FLAGS)
# the degradation summary lists these
FLAGS_ALERTED = (CRITICAL_ANOMALIES, DEGRADING_TREND, MISCONFIGURED, LEVEL_SHIFT)
