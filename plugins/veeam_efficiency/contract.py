"""The collector contract: the JSON document every collector (PowerShell, replay) emits.

Validated with pydantic straight from the JSON text (``TypeAdapter.validate_json``), into
plain dicts rather than model instances, so a million-session document costs no more
memory than ``json.loads`` would. A document that breaks the contract raises
:class:`ContractError`, whose message names the problem and the first offending record:
that is a data error, and retrying the task will not fix it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_type_hints

from pydantic import AfterValidator, AwareDatetime, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from veeam_efficiency.tables import SESSION_RECORD, Column

SCHEMA_VERSION = 1
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


Text = Annotated[str, Field(max_length=10_000, pattern=_NO_NUL)]
Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=_NO_NUL)]
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
    else:
        value = {"text": Text, "bool": bool, "time": UtcTime}.get(column.kind)
        if column.kind == "int":
            value = Annotated[int, Field(ge=0, le=PG_INT_MAX[column.pg_type])]
    if value is None:
        raise TypeError(f"no contract type for {column}")
    return value | None if column.nullable else value


if TYPE_CHECKING:
    Session = dict[str, Any]
else:
    # One job session, with Veeam's own ``BackupStats`` and ``Progress`` figures: built from
    # the column registry, so the contract and the history table cannot drift apart.
    Session = with_config(_STRICT)(
        TypedDict("Session", {column.name: _contract_type(column) for column in SESSION_RECORD.columns})
    )


class CollectorDocument(TypedDict):
    """One VBR server's sessions for one window."""

    __pydantic_config__ = _STRICT  # type: ignore[misc]

    schema_version: Literal[1]
    vbr_host: Annotated[str, Field(min_length=1, max_length=253, pattern=_NO_NUL)]
    vbr_version: Text
    collected_at: UtcTime
    window_start: UtcTime
    window_end: UtcTime
    sessions: list[Session]


DOCUMENT_FIELDS: tuple[str, ...] = tuple(get_type_hints(CollectorDocument))
SESSION_FIELDS: tuple[str, ...] = SESSION_RECORD.names

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
        return f"unsupported schema_version {found!r}: this release reads version {SCHEMA_VERSION}"
    return f"collector output breaks the contract ({len(errors)} problem(s)); first: {_locate(first, text)}"


def _locate(error: Any, text: str | bytes) -> str:
    loc = error["loc"]
    detail = f"{error['msg']} (got {_short(error.get('input'))})"
    if len(loc) >= 2 and loc[0] == "sessions" and isinstance(loc[1], int):
        session_id = _peek(text, ("sessions", loc[1], "session_id"))
        field = ".".join(str(part) for part in loc[2:]) or "the record"
        return f"sessions[{loc[1]}] (session_id {_short(session_id)}): field {field!r}: {detail}"
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
    """The rules a JSON schema cannot say: the window ends after it starts."""
    if document["window_end"] <= document["window_start"]:
        raise ContractError(
            f"field 'window_end': {document['window_end'].isoformat()} is not after "
            f"window_start {document['window_start'].isoformat()}"
        )
