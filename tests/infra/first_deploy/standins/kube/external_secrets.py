"""External Secrets' controller.

- External Secrets reads the store when an ExternalSecret is created or its annotations change
  (external-secrets.io FAQ, "Can I manually trigger a secret refresh?"): status.refreshTime (now,
  to the second) and condition Ready True.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def refresh_secret(obj: dict[str, Any]) -> None:
    """External Secrets' controller reading the store for this ExternalSecret."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    obj["status"] = {
        "refreshTime": now,
        "conditions": [{"type": "Ready", "status": "True", "reason": "SecretSynced"}],
    }
