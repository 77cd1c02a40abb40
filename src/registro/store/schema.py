"""The database schema, defined once. Alembic migrations are written against these tables."""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

NAME_MAX_LENGTH = 100
# A caller's X-Request-ID is kept only up to this long (telemetry/requests.py).
REQUEST_ID_MAX_LENGTH = 128
TRACE_ID_LENGTH = 32  # a W3C trace id in hex (registro.telemetry.tracing)

metadata = sa.MetaData()

JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only

records = sa.Table(
    "records",
    metadata,
    sa.Column("id", Id, sa.Identity(always=False), primary_key=True),
    sa.Column("name", sa.String(NAME_MAX_LENGTH), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", name="records_name_key"),
    sqlite_autoincrement=True,  # never reuse the id of a deleted record
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", Id, sa.Identity(always=False), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("record_id", sa.BigInteger(), nullable=False),
    sa.Column("before", JSONDocument, nullable=True),
    sa.Column("after", JSONDocument, nullable=True),
    sa.Column("request_id", sa.String(200), nullable=True),
    sa.Column("client", sa.String(100), nullable=True),
    sa.Column("caller_request_id", sa.String(REQUEST_ID_MAX_LENGTH), nullable=True),
    sa.Column("trace_id", sa.String(TRACE_ID_LENGTH), nullable=True),
    sqlite_autoincrement=True,
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", Id, sa.Identity(always=False), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.String(100), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("name", name="api_keys_name_key"),
    sa.UniqueConstraint("key_id", name="api_keys_key_id_key"),
)

# A write's Idempotency-Key, per caller, with the response it got (registro.store.idempotent_write).
IDEMPOTENCY_KEY_MAX_LENGTH = 255

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("key", sa.String(IDEMPOTENCY_KEY_MAX_LENGTH), nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.Integer(), nullable=True),  # null only inside the write's transaction
    sa.Column("body", sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint("actor", "key", name="idempotency_keys_pkey"),
    sa.Index("idempotency_keys_created_at", "created_at"),
)
