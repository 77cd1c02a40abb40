"""Request and response shapes: they validate input and document the API in /openapi.json."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from registro.store.schema import NAME_MAX_LENGTH

MAX_ID = 2**63 - 1  # PostgreSQL bigint

# Not allowed anywhere in a name: control characters (C0, DEL, C1), lone surrogates, the BOM.
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs"})
_FORBIDDEN_CHARS = "\ufeff"
# The same rule for /openapi.json, but for lone surrogates: they are not text, and JSON Schema
# tools cannot take them in a pattern (Hypothesis, behind schemathesis, drops such a pattern).
_NOT_ALLOWED = r"\u0000-\u001f\u007f-\u009f\ufeff"
NAME_PATTERN = rf"^[^{_NOT_ALLOWED}]*[^\s{_NOT_ALLOWED}][^{_NOT_ALLOWED}]*$"


def _clean_name(value: str) -> str:
    if len(value) > NAME_MAX_LENGTH:
        raise ValueError(f"name must be at most {NAME_MAX_LENGTH} characters")
    if any(
        c in _FORBIDDEN_CHARS or unicodedata.category(c) in _FORBIDDEN_CATEGORIES for c in value
    ):
        raise ValueError("name must not contain control characters")
    value = value.strip()
    if not value:
        raise ValueError("name must not be blank")
    return value


Name = Annotated[
    StrictStr,
    AfterValidator(_clean_name),
    Field(
        description="Unique; surrounding white space is trimmed.",
        json_schema_extra={"minLength": 1, "maxLength": NAME_MAX_LENGTH, "pattern": NAME_PATTERN},
        examples=["alpha"],
    ),
]


class NameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class RecordOut(BaseModel):
    id: int
    name: str


class Created(RecordOut):
    message: str = "Data inserted successfully"


class Message(BaseModel):
    message: str


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    record_id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None = Field(description="The service's own id for the request")
    client: str | None = Field(description="The client's IP address, from trusted proxies only")
    caller_request_id: str | None = Field(
        description="The X-Request-ID the caller sent, if it was a plain token"
    )


class InvalidOut(BaseModel):
    message: str
    errors: list[dict[str, str]] = Field(description="Each problem: `loc` (where) and `msg`")


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=100, ge=1, le=1000, description="Records per page")
    after: int = Field(default=0, ge=0, le=MAX_ID, description="Last id of the previous page")


class AuditQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")
    limit: int = Field(default=100, ge=1, le=1000, description="Entries per page")
    before: int | None = Field(default=None, ge=1, le=MAX_ID, description="Last id seen")


class VersionOut(BaseModel):
    version: str
    commit: str
    build_time: str


class HealthOut(BaseModel):
    message: str
