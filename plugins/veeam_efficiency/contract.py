"""The collector contract: the JSON document every collector (PowerShell, replay) emits.

Validated with pydantic straight from the JSON text (``TypeAdapter.validate_json``), into
plain dicts rather than model instances, so a million-session document costs no more
memory than ``json.loads`` would. A document that breaks the contract raises
:class:`ContractError`, whose message names the problem and the first offending record:
that is a data error, and retrying the task will not fix it.

Version 2 adds what the server knows about each job (``jobs``: compression, block size,
inline dedup, encryption, target repository) and the machine of a per-machine child
session (``object_name``). Version 1 documents stay valid: their sessions have no
``object_name`` and their jobs unknown settings. Both records are built from the column
registry (``tables.SESSION_RECORD``, ``tables.JOB_RECORD``, ``tables.REPOSITORY_RECORD``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, NotRequired, get_type_hints

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from veeam_efficiency.tables import JOB_RECORD, REPOSITORY_RECORD, SESSION_RECORD, Column, Table

SCHEMA_VERSION = 2  # what this release's collector writes
SUPPORTED_VERSIONS = (1, 2)
MAX_BIGINT = 2**63 - 1  # sizes are stored as PostgreSQL bigint
MAX_INT = 2**31 - 1  # raw ratios are stored as PostgreSQL integer
PG_INT_MAX = {"bigint": MAX_BIGINT, "integer": MAX_INT}
HOST_ROLLUP_JOB_ID = "*"  # job_id of the per-host roll-up scorecard; refused as a real job_id


class ContractError(ValueError):
    """Collector output that breaks the contract (a data error: do not retry)."""


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the years 1-9999 once converted to UTC") from None


UtcTime = Annotated[AwareDatetime, AfterValidator(_utc)]
_NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL


def _not_rollup_id(value: str) -> str:
    if value == HOST_ROLLUP_JOB_ID:
        raise ValueError(f"{HOST_ROLLUP_JOB_ID!r} is reserved for the per-host roll-up scorecard")
    return value


TEXT_MAX_LENGTH = 10_000  # characters of a text field, unless its column says otherwise
IDENTIFIER_LENGTH = (1, 200)  # characters of an opaque key (job_id, session_id)
Text = Annotated[str, Field(max_length=TEXT_MAX_LENGTH, pattern=_NO_NUL)]
Identifier = Annotated[str, Field(min_length=IDENTIFIER_LENGTH[0], max_length=IDENTIFIER_LENGTH[1], pattern=_NO_NUL)]


def text_length(column: Column) -> tuple[int, int]:
    """The fewest and most characters the contract allows in text ``column`` (both parsers read it)."""
    return IDENTIFIER_LENGTH if column.identifier else (0, column.max_length or TEXT_MAX_LENGTH)


JobId = Annotated[Identifier, AfterValidator(_not_rollup_id)]


_STRICT = ConfigDict(strict=True, extra="ignore")  # 96.0 or "96" is not a Veeam ratio


def _contract_type(column: Column) -> Any:
    """What a collector's value of ``column`` must be; every collector number is a size or a
    raw ratio, so non-negative and within its PostgreSQL type."""
    if column.values:
        value: Any = Literal[column.values]
    elif column.name == "job_id":
        value = JobId
    elif column.identifier:
        value = Identifier
    elif column.max_length is not None:
        value = Annotated[str, Field(max_length=column.max_length, pattern=_NO_NUL)]
    else:
        value = {"text": Text, "bool": bool, "time": UtcTime}.get(column.kind)
        if column.kind == "int":
            value = Annotated[int, Field(ge=0, le=PG_INT_MAX[column.pg_type])]
    if value is None:
        raise TypeError(f"no contract type for {column}")
    value = value | None if column.nullable else value
    return NotRequired[value] if column.optional else value


def _record(name: str, table: Table, **nested: Any) -> Any:
    """A strict TypedDict of ``table``'s columns (plus ``nested`` records), as pydantic validates it."""
    fields = {column.name: _contract_type(column) for column in table.columns}
    return with_config(_STRICT)(TypedDict(name, fields | nested))  # type: ignore[operator]


if TYPE_CHECKING:
    Session = dict[str, Any]
    JobSettings = dict[str, Any]
else:
    # One job session, with Veeam's own ``BackupStats`` and ``Progress`` figures: built from
    # the column registry, so the contract and the history table cannot drift apart.
    Session = _record("Session", SESSION_RECORD)
    # v2: one job's storage settings (null: unknown), its target repository nested (or null).
    JobSettings = _record("JobSettings", JOB_RECORD, repository=_record("Repository", REPOSITORY_RECORD) | None)


class CollectorDocument(TypedDict):
    """One VBR server's sessions for one window (and, from version 2, its jobs' settings)."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]

    schema_version: Literal[1, 2]
    vbr_host: Annotated[str, Field(min_length=1, max_length=253, pattern=_NO_NUL)]
    vbr_version: Text
    collected_at: UtcTime
    window_start: UtcTime
    window_end: UtcTime
    sessions: list[Session]
    jobs: NotRequired[list[JobSettings]]  # v2; a job absent from it has unknown settings


DOCUMENT_FIELDS: tuple[str, ...] = tuple(get_type_hints(CollectorDocument))
SESSION_FIELDS: tuple[str, ...] = SESSION_RECORD.names
OPTIONAL_SESSION_FIELDS: tuple[str, ...] = tuple(column.name for column in SESSION_RECORD.columns if column.optional)
JOB_FIELDS: tuple[str, ...] = (*JOB_RECORD.names, "repository")
REPOSITORY_FIELDS: tuple[str, ...] = REPOSITORY_RECORD.names

DOCUMENT_ADAPTER: TypeAdapter[CollectorDocument] = TypeAdapter(CollectorDocument)
SESSIONS_ADAPTER: TypeAdapter[list[Session]] = TypeAdapter(list[Session])


def parse_document(text: str | bytes) -> CollectorDocument:
    """Validate collector output and return it with every time converted to UTC.

    Raises
    ------
    ContractError
        Not JSON, another ``schema_version``, a missing or mistyped field, a NUL
        character in a text field, the roll-up job_id, or a window that ends before
        it starts. The message names the problem and the first offending record.
    """
    if isinstance(text, bytes):
        # invalid bytes become U+FFFD and then fail as JSON or as text, named like any other error
        text = text.decode("utf-8-sig", errors="replace")
    text = text.removeprefix("\ufeff")  # Windows PowerShell 5.1 writes a UTF-8 BOM
    try:
        document = DOCUMENT_ADAPTER.validate_json(text)
    except ValidationError as exc:
        raise ContractError(_describe(exc, text)) from None
    check_document(document)
    return document


def _describe(exc: ValidationError, text: str | bytes) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return f"collector output is not valid JSON: {first['msg']}"
    if any(error["loc"] == ("schema_version",) for error in errors):
        found = _peek(text, ("schema_version",))
        versions = " and ".join(map(str, SUPPORTED_VERSIONS))
        return f"unsupported schema_version {found!r}: this release reads versions {versions}"
    return f"collector output breaks the contract ({len(errors)} problem(s)); first: {_locate(first, text)}"


def _locate(error: Any, text: str | bytes) -> str:
    loc = error["loc"]
    detail = f"{error['msg']} (got {_short(error.get('input'))})"
    if len(loc) >= 2 and loc[0] in ("sessions", "jobs") and isinstance(loc[1], int):
        key = "session_id" if loc[0] == "sessions" else "job_id"
        record_id = _peek(text, (loc[0], loc[1], key))
        field = ".".join(str(part) for part in loc[2:]) or "the record"
        return f"{loc[0]}[{loc[1]}] ({key} {_short(record_id)}): field {field!r}: {detail}"
    if not loc:
        return f"the document: {detail}"
    return f"field {'.'.join(str(part) for part in loc)!r}: {detail}"


def _peek(text: str | bytes, path: tuple[Any, ...]) -> Any:
    """Best-effort look-up of a value in the raw JSON, for error messages only."""
    try:
        node: Any = json.loads(text)
        for key in path:
            node = node[key]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return node


def _short(value: Any, limit: int = 80) -> str:
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def check_document(document: CollectorDocument) -> None:
    """The rules a JSON schema cannot say: the window ends after it starts; ``jobs`` only
    from version 2, each job listed once."""
    if document["window_end"] <= document["window_start"]:
        raise ContractError(
            f"field 'window_end': {document['window_end'].isoformat()} is not after "
            f"window_start {document['window_start'].isoformat()}"
        )
    if "jobs" in document and document["schema_version"] < 2:
        raise ContractError("field 'jobs' needs schema_version 2; this document says 1")
    job_ids = [job["job_id"] for job in document.get("jobs", ())]
    if len(set(job_ids)) != len(job_ids):
        repeated = next(job_id for job_id in job_ids if job_ids.count(job_id) > 1)
        raise ContractError(f"field 'jobs': job_id {_short(repeated)} is listed more than once")
