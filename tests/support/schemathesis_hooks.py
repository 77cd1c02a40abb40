"""Schemathesis hooks (SCHEMATHESIS_HOOKS): a fresh Idempotency-Key for each request it sends.

Schemathesis repeats generated values across cases, and a key reused with another request is
refused with 422 by design, which its "schema-valid request accepted" check would report (and a
replayed POST names a record a later case may have deleted). A well-formed key is replaced by a
new one before every call, the fix schemathesis's own output suggests ("a `before_call` hook can
give unique fields fresh values"). Only in cases meant to be valid: an edit makes schemathesis
revalidate a case, which would turn a negative one (a missing Authorization header) positive;
there, and for a malformed key, what was generated is sent (refused before the key is looked
at). Replays are tested in tests/integration/test_idempotency.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis

from registro.api.idempotency_header import HEADER, KEY


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers
    if case.meta is not None and case.meta.generation.mode.is_negative:
        return
    if headers and isinstance(headers.get(HEADER), str) and KEY.fullmatch(headers[HEADER]):
        headers[HEADER] = uuid.uuid4().hex
