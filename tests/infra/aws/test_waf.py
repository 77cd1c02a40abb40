"""The web ACL lets through every request the service accepts, and blocks what it would refuse."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def service_max_body_bytes() -> int:
    """The default of REGISTRO_MAX_BODY_BYTES, read from src/registro/settings.py."""
    tree = ast.parse((ROOT / "src" / "registro" / "settings.py").read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "max_body_bytes"
            and isinstance(node.value, ast.Call)
        ):
            (default,) = [k.value for k in node.value.keywords if k.arg == "default"]
            value = ast.literal_eval(default)
            assert isinstance(value, int)
            return value
    raise AssertionError("max_body_bytes not found in settings.py")


def rules(templates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    acl = templates["edge"]["Resources"]["WebAcl"]["Properties"]
    return {rule["Name"]: rule for rule in acl["Rules"]}


def test_a_body_the_service_accepts_is_not_blocked_by_the_common_rule_set(
    templates: dict[str, Any],
) -> None:
    """R3: the AWS managed common rule set's SizeRestrictions_BODY blocks request bodies over
    8 KB (AWS WAF Developer Guide, "Baseline rule groups", core rule set
    https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html);
    the service accepts bodies up to REGISTRO_MAX_BODY_BYTES. That rule is overridden to Count."""
    assert service_max_body_bytes() > 8 * 1024
    common = rules(templates)["aws-common"]["Statement"]["ManagedRuleGroupStatement"]
    assert common["Name"] == "AWSManagedRulesCommonRuleSet"
    overrides = {o["Name"]: o["ActionToUse"] for o in common.get("RuleActionOverrides", [])}
    assert overrides.get("SizeRestrictions_BODY") == {"Count": {}}


def test_the_own_size_rule_blocks_above_the_services_limit_only(templates: dict[str, Any]) -> None:
    """An ALB forwards at most 8 KB of the body to WAF (fixed; AWS WAF API Reference, Body,
    OversizeHandling: https://docs.aws.amazon.com/waf/latest/APIReference/API_Body.html), so a
    Body size constraint cannot see 64 KiB: the rule matches the declared Content-Length above
    the service's limit, the same header the service checks first (src/registro/middleware.py)."""
    limit = service_max_body_bytes()
    rule = rules(templates)["request-body-over-service-limit"]
    assert rule["Action"] == {"Block": {}}
    statement = rule["Statement"]["RegexMatchStatement"]
    assert statement["FieldToMatch"] == {"SingleHeader": {"Name": "content-length"}}
    pattern = re.compile(statement["RegexString"])
    for accepted in (0, 1, 8192, 8193, 9999, 10000, 65535, limit):
        assert not pattern.search(str(accepted)), accepted
    for refused in (limit + 1, limit + 464, 69999, 70000, 99999, 100000, 10**9):
        assert pattern.search(str(refused)), refused
    assert pattern.search(f"00{limit + 1}") and not pattern.search(f"00{limit}")
