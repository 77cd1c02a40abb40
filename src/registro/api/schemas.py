"""Request and response shapes, each declared once: they validate input, serialise output and
document both in /openapi.json.

A record and an audit entry are the store's own dataclasses (`Record`, `AuditEntry`): pydantic
serialises and documents them as they are, so the API cannot drift from what the store returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr

from registro.api.names import clean_name, name_pattern
from registro.store.base import Record
from registro.store.schema import NAME_MAX_LENGTH

MAX_ID = 2**63 - 1  # PostgreSQL bigint


def _document_name(schema: dict[str, Any]) -> None:
    schema.update(minLength=1, pattern=name_pattern())  # computed when documented, not at import


Name = Annotated[
    StrictStr,
    AfterValidator(clean_name),
    Field(
        description=(
            f"Unique; compared and stored in Unicode NFC, trimmed of surrounding white space, "
            f"1 to {NAME_MAX_LENGTH} characters once trimmed; no control, format, unassigned, "
            "private-use or surrogate characters."
        ),
        examples=["alpha"],
        json_schema_extra=_document_name,
    ),
]


class NameIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


@dataclass(frozen=True, slots=True)
class Created(Record):
    """What POST /data answers (the seed's reply): the record and a message."""

    message: str = "Data inserted successfully"


class Message(BaseModel):
    """Every error body, and the replies that are only a message."""

    message: str


class Problem(BaseModel):
    loc: str = Field(description="Where: `body.name`, `query.limit`, `path.id`, ...")
    msg: str


class Invalid(Message):
    """The 422 body: the first problem in `message`, all of them in `errors`."""

    errors: list[Problem]


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
