"""Run-time knobs of the analysis: one validated object, also the source of the DAG's Params.

Every knob is a pydantic field with its bounds and a description a backup admin can
read in the trigger form; :func:`param_specs` turns the fields into JSON-schema
keywords for ``airflow.sdk.Param`` so the DAG and the analysis never disagree on a
default. Rules a JSON schema cannot express (weights sum to 1, thresholds descend)
are checked here and fail the run before anything is collected.
"""

from __future__ import annotations

import itertools
import math
import os
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

COMPONENTS = ("dedup", "compression", "trend", "consistency", "anomaly")


class AnalysisSettings(BaseModel):
    """What a run scores against. Defaults are the product's specification."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    lookback_days: int = Field(
        35,
        ge=1,
        le=730,
        description="Days of sessions a scorecard covers, ending at the end of the run's day. A few days more "
        "than min_sessions, so a daily job that missed or failed a day or two still gets its scorecard.",
    )
    min_sessions: int = Field(
        30, ge=4, le=100_000, description="Scorable sessions a job needs in the window to get a scorecard."
    )

    weight_dedup: float = Field(0.30, ge=0, le=1, description="Weight of the deduplication score in the overall score.")
    weight_compression: float = Field(0.25, ge=0, le=1, description="Weight of the compression score.")
    weight_trend: float = Field(0.20, ge=0, le=1, description="Weight of the trend score.")
    weight_consistency: float = Field(0.15, ge=0, le=1, description="Weight of the consistency score.")
    weight_anomaly: float = Field(
        0.10, ge=0, le=1, description="Weight of the anomaly score. The five weights must sum to 1."
    )

    grade_a_min: float = Field(85, ge=0, le=100, description="Lowest overall score graded A (and rated EXCELLENT).")
    grade_b_min: float = Field(70, ge=0, le=100, description="Lowest overall score graded B (and rated GOOD).")
    grade_c_min: float = Field(55, ge=0, le=100, description="Lowest overall score graded C (and rated FAIR).")
    grade_d_min: float = Field(40, ge=0, le=100, description="Lowest overall score graded D; below is F.")

    target_dedup_factor: float = Field(
        2.5, gt=1, le=100, description="Deduplication factor a well-tuned job reaches (the 'good' benchmark)."
    )
    target_compression_factor: float = Field(
        1.8, gt=1, le=100, description="Compression factor a well-tuned job reaches."
    )
    price_per_tb_usd: float = Field(
        100.0, ge=0, le=1_000_000, description="What one TB of backup storage costs per month, in USD."
    )

    anomaly_method: Literal["robust", "zscore"] = Field(
        "robust",
        description="robust: median and MAD (x1.4826); zscore: mean and standard deviation, which a burst of anomalies can mask.",
    )
    anomaly_threshold: float = Field(
        3.0, gt=0, le=20, description="Standard scores from the baseline that make a session anomalous."
    )
    anomaly_critical_drop: float = Field(
        0.20, gt=0, lt=1, description="An anomaly this far below its baseline (0.20 = 20%) is critical."
    )
    min_baseline_sessions: int = Field(
        5,
        ge=3,
        le=1000,
        description="Sessions of one kind (Full, Increment, Synthetic) a job needs before its sessions are judged against them.",
    )
    trend_p_value: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="Significance level of the Welch t-test between the older and newer half of the window.",
    )
    trend_min_change: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Relative change of the mean combined factor (0.05 = 5%) a significant trend must exceed.",
    )
    high_variance_cv: float = Field(
        0.25,
        gt=0,
        le=10,
        description="Coefficient of variation of the combined factor above which HIGH_VARIANCE is flagged.",
    )
    min_factor: float = Field(
        0.1,
        gt=0,
        lt=1,
        description="Smallest plausible dedup or compression factor; sessions outside [min, max] are not scored.",
    )
    max_factor: float = Field(100.0, gt=1, le=10_000, description="Largest plausible dedup or compression factor.")

    @model_validator(mode="after")
    def _coherent(self) -> AnalysisSettings:
        total = sum(self.weights.values())
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            shown = ", ".join(f"{name}={value:g}" for name, value in self.weights.items())
            raise ValueError(f"the five score weights must sum to 1, got {total:g} ({shown})")
        grades = [self.grade_a_min, self.grade_b_min, self.grade_c_min, self.grade_d_min]
        if any(high <= low for high, low in itertools.pairwise(grades)):
            raise ValueError(f"grade thresholds must descend A > B > C > D, got {grades}")
        return self

    @property
    def weights(self) -> dict[str, float]:
        return {name: getattr(self, f"weight_{name}") for name in COMPONENTS}


def param_specs(model: type[BaseModel] = AnalysisSettings) -> dict[str, dict[str, Any]]:
    """JSON-schema keywords per field, ready for ``Param(**spec)`` in the DAG."""
    keywords = (
        "type", "items", "enum", "description", "title",
        "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "maxItems",
        "pattern",
    )  # fmt: skip
    specs: dict[str, dict[str, Any]] = {}
    for name, prop in model.model_json_schema()["properties"].items():
        spec = {key: prop[key] for key in keywords if key in prop}
        spec["default"] = model.model_fields[name].get_default(call_default_factory=True)
        specs[name] = spec
    return specs


# Values that name things for other programs are held to plain alphabets (checked here and in the
# trigger form), so none can carry shell or PowerShell syntax or pass for a command-line option.
# Job names need no such rule: they only ever travel base64-encoded and as bound SQL parameters.
HOST_NAME = r"^[A-Za-z0-9_:][A-Za-z0-9_.:-]{0,252}$"  # DNS name, IPv4 or IPv6 address; no leading "-"
CONN_ID = r"^[A-Za-z0-9_.-]{1,250}$"  # Airflow's own rule for connection ids
EXECUTABLE = r"^[A-Za-z0-9_./:\\][A-Za-z0-9_ ./:\\-]{0,259}$"  # a command name or a path; no leading "-"
HostName = Annotated[str, StringConstraints(pattern=HOST_NAME)]
JobName = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


COLLECTOR_ENV = "VEEAM_COLLECTOR"
VBR_HOSTS_ENV = "VEEAM_VBR_HOSTS"
Collector = Literal["", "ssh", "local", "replay"]  # "": none chosen


def _env_list(name: str) -> list[str]:
    """A comma-separated environment variable as a list (empty items dropped)."""
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_collector() -> Collector:
    """The deployment's collector (env ``VEEAM_COLLECTOR``), read at parse time; empty: none chosen.

    There is deliberately no built-in default: a deployment that forgot to choose must fail
    its runs, never score the bundled sample data as if it were its servers.
    """
    # not checked here: a wrong value fails the Param's enum, and each task's validation, naming it
    return cast(Collector, os.environ.get(COLLECTOR_ENV, "").strip())


def no_collector_message() -> str:
    return (
        "no collector chosen: set the environment variable VEEAM_COLLECTOR to ssh (the PowerShell collector "
        "on each VBR server over the vbr_ssh connection; list the servers in VEEAM_VBR_HOSTS), local (pwsh on "
        "this worker) or replay (collector JSON files from VEEAM_REPLAY_DIR) on the scheduler, dag-processor "
        "and workers, or choose `collector` in the run's conf or trigger form"
    )


COLLECTOR_POOL_ENV = "VEEAM_COLLECTOR_POOL"
DEFAULT_COLLECTOR_POOL = "vbr_collectors"
DEFAULT_POOL_SLOTS = 4
RETRY_DELAY_ENV = "VEEAM_RETRY_DELAY_SECONDS"
POOL_GRACE_ENV = "VEEAM_POOL_GRACE_SECONDS"


def collector_pool() -> str:
    """The Airflow pool every collection runs in (env ``VEEAM_COLLECTOR_POOL``, read at parse time).

    Its slots cap how many VBR servers are collected from at once across all runs and workers.
    """
    return os.environ.get(COLLECTOR_POOL_ENV, "").strip() or DEFAULT_COLLECTOR_POOL


def create_pool_argv(pool: str | None = None, slots: int = DEFAULT_POOL_SLOTS) -> list[str]:
    """``airflow`` CLI arguments that create (or resize) the collector pool: what whoever starts Airflow runs."""
    return ["pools", "set", pool or collector_pool(), str(slots), "Concurrent collections from VBR servers"]


def missing_pool_message(pool: str) -> str:
    return (
        f"Airflow pool {pool!r} does not exist, so no collection could ever be scheduled (the scheduler would "
        f"leave every collect task 'scheduled'). Create it: airflow pools set {pool} {DEFAULT_POOL_SLOTS} "
        f'"Concurrent collections from VBR servers" (its slots are how many VBR servers are collected from at '
        f"once), or name an existing pool in the environment variable {COLLECTOR_POOL_ENV}"
    )


def pool_grace_seconds() -> float:
    """How long a run's collections may wait in 'scheduled' with no sign of the collector pool (env, read at parse time; 600)."""
    return float(os.environ.get(POOL_GRACE_ENV, "").strip() or 600)


def retry_delay_seconds() -> int:
    """First retry delay of collect and load (env ``VEEAM_RETRY_DELAY_SECONDS``, read at parse time; 120)."""
    return int(os.environ.get(RETRY_DELAY_ENV, "").strip() or 120)


class CollectionSettings(BaseModel):
    """Where the sessions come from and where the results go."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    collector: Collector = Field(
        default_factory=_env_collector,
        description="ssh: run the PowerShell collector on each VBR host over SSH; local: run it with pwsh on this "
        "worker (a worker on the VBR server); replay: read collector JSON files from the replay directory. "
        "Default: env VEEAM_COLLECTOR; empty: none chosen, the run fails at once.",
    )
    replay_path: str = Field(
        "",
        max_length=1024,
        description="replay only: a collector JSON file, or a directory of them (one per VBR host), relative to "
        "the replay directory (env VEEAM_REPLAY_DIR). Empty: the whole replay directory.",
    )
    vbr_hosts: list[HostName] = Field(
        default_factory=lambda: _env_list(VBR_HOSTS_ENV),
        max_length=500,
        description="ssh: VBR servers to collect from, each reached through the SSH connection (its host is "
        "replaced by the name here). Empty: the connection's own host. local: a label for this server. "
        "Default: env VEEAM_VBR_HOSTS (comma-separated).",
    )
    job_names: list[JobName] = Field(
        default_factory=list, max_length=10_000, description="Only these VBR jobs (exact names). Empty: every job."
    )
    ssh_conn_id: str = Field("vbr_ssh", pattern=CONN_ID, description="Airflow SSH connection to the VBR host(s).")
    postgres_conn_id: str = Field(
        "postgres_default", pattern=CONN_ID, description="Airflow connection of the results database."
    )
    pwsh_path: str = Field(
        "pwsh",
        pattern=EXECUTABLE,
        description="PowerShell executable: pwsh (PowerShell 7, VBR 13) or powershell.exe (Windows PowerShell 5.1, VBR 12).",
    )
    collector_timeout_minutes: int = Field(
        30,
        ge=1,
        le=720,
        description="How long (wall clock) the collector may run on one VBR host before the attempt fails; "
        "its heartbeat does not extend it.",
    )
    allow_full_session_scan: bool = Field(
        False,
        description="ssh/local: when this VBR build lacks Veeam's indexed session queries, read the whole session "
        "table with Get-VBRBackupSession (hours on large servers). Off: the collection fails naming the missing query.",
    )
    collection_mode: Literal["incremental", "full"] = Field(
        "incremental",
        description="incremental: ask the VBR server only for the parts of the window the results database has not "
        "collected for good (see recheck_days) and read the rest from the session history; full: ask for the whole "
        "window (after changing lookback_days, or to re-read sessions VBR has corrected). A run with job_names "
        "always collects in full.",
    )
    recheck_days: int = Field(
        2,
        ge=0,
        le=30,
        description="incremental: sessions created this many days before a collection may still change (running, "
        "retried, updated), so they are asked for again by the next run.",
    )
    history_retention_days: int = Field(
        800,
        ge=1,
        le=36_500,
        description="Days of session history kept before the run's window end: older months of "
        "feature3.storage_efficiency_history are dropped whole (and their collection log). More than "
        "lookback_days + recheck_days.",
    )

    @model_validator(mode="before")
    @classmethod
    def _history_outlives_the_window(cls, data: Any) -> Any:
        """The history must hold every window a run reads (the other fields' own checks come after)."""
        if isinstance(data, dict):
            values = [
                data.get(name, default)
                for name, default in (
                    ("history_retention_days", cls.model_fields["history_retention_days"].default),
                    ("lookback_days", AnalysisSettings.model_fields["lookback_days"].default),
                    ("recheck_days", cls.model_fields["recheck_days"].default),
                )
            ]
            if all(type(value) is int for value in values) and values[0] <= values[1] + values[2]:
                raise ValueError(
                    f"history_retention_days ({values[0]}) must exceed lookback_days + recheck_days "
                    f"({values[1]} + {values[2]}): runs read their window from the history"
                )
        return data


EMAIL_PATTERN = r"^[^@\s,;<>]+@[^@\s,;<>]+$"


def _env_recipients() -> list[str]:
    """The ops team's default recipients (env ``VEEAM_ALERT_RECIPIENTS``, comma-separated): read at parse
    time without touching the database, so every run and the deadline alert share one default."""
    return _env_list("VEEAM_ALERT_RECIPIENTS")


class AlertSettings(BaseModel):
    """Who hears about failed tasks, degrading jobs and a late run, and through which SMTP connection."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    alert_on_degradation: bool = Field(
        True,
        description="After loading, send one summary of the jobs flagged CRITICAL_ANOMALIES, DEGRADING_TREND, "
        "MISCONFIGURED or LEVEL_SHIFT, each with its top recommendation.",
    )
    alert_recipients: list[Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=320)]] = Field(
        default_factory=_env_recipients,
        max_length=100,
        description="E-mail addresses of the task-failure, degradation and deadline alerts "
        "(default: env VEEAM_ALERT_RECIPIENTS). Empty: no e-mail, only the optional alert hook.",
    )
    smtp_conn_id: str = Field(
        "smtp_default",
        min_length=1,
        max_length=250,
        description="Airflow SMTP connection the alerts are sent through; when it does not exist, no e-mail is sent.",
    )
