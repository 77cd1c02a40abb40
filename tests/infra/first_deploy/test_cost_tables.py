"""The monthly cost tables of docs/aws.md: their arithmetic, and their quantities against the
environment files and templates they price (a changed node count or a new alarm changes the
table, or this fails). Prices and their sources are the doc's; only the sums are checked here."""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import yaml
from benchmarks import trace_cost

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "aws.md"
AWS = ROOT / "deploy" / "aws"
HOURS_A_MONTH = Decimal(730)


class _Tags(yaml.SafeLoader):
    """Reads a template's structure; short-form tags (!Ref, !Sub...) become None."""


_Tags.add_multi_constructor("!", lambda loader, suffix, node: None)


def table(env: str) -> dict[str, tuple[Decimal, str, Decimal, Decimal]]:
    """item -> (quantity, unit, unit price, month) from the doc's `### <env>` cost table."""
    text = DOC.read_text()
    section = text.split("## Monthly cost per environment", 1)[1].split(f"### {env}\n", 1)[1]
    rows = {}
    for line in section.strip().split("\n\n", 1)[0].splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        item = re.sub(r"\s*\[\d+\]$", "", cells[0])
        if item == "**total**":
            rows[item] = (Decimal(0), "", Decimal(0), Decimal(cells[4].strip("*")))
        else:
            rows[item] = (Decimal(cells[1]), cells[2], Decimal(cells[3]), Decimal(cells[4]))
    return rows


def values(env: str) -> dict[str, str]:
    return json.loads((AWS / "environments" / f"{env}.json").read_text())


def resources(resource_type: str) -> int:
    count = 0
    for path in (AWS / "templates").glob("*.yaml"):
        template = yaml.load(path.read_text(), Loader=_Tags)  # noqa: S506 (SafeLoader)
        count += sum(1 for r in template["Resources"].values() if r["Type"] == resource_type)
    return count


def zones() -> int:
    """The cluster's node groups, one per zone of the network's private subnets."""
    template = yaml.load((AWS / "templates" / "cluster.yaml").read_text(), Loader=_Tags)  # noqa: S506
    return sum(1 for r in template["Resources"].values() if r["Type"] == "AWS::EKS::Nodegroup")


def requested_gib(values_file: str, *path: str) -> Decimal:
    """A volume size a chart's values request (deploy/k8s/platform/values), in GiB."""
    node = yaml.safe_load(
        (ROOT / "deploy" / "k8s" / "platform" / "values" / values_file).read_text()
    )
    for key in path:
        node = node[key]
    size = str(node)
    assert size.endswith("Gi"), size
    return Decimal(size[:-2])


def web_acl_rules() -> int:
    template = yaml.load((AWS / "templates" / "edge.yaml").read_text(), Loader=_Tags)  # noqa: S506
    return len(template["Resources"]["WebAcl"]["Properties"]["Rules"])


def quantity(rows: dict[str, tuple[Decimal, str, Decimal, Decimal]], prefix: str) -> Decimal:
    (match,) = [row[0] for item, row in rows.items() if item.startswith(prefix)]
    return match


@pytest.mark.parametrize("env", ["qa", "prod"])
def test_each_line_is_quantity_times_price_and_the_total_their_sum(env: str) -> None:
    rows = table(env)
    total = rows.pop("**total**")[3]
    for item, (count, unit, price, month) in rows.items():
        hours = HOURS_A_MONTH if unit.endswith("-hour") else Decimal(1)
        assert (count * price * hours).quantize(Decimal("0.01"), ROUND_HALF_UP) == month, item
    assert sum(row[3] for row in rows.values()) == total


@pytest.mark.parametrize("env", ["qa", "prod"])
def test_the_quantities_are_the_environments(env: str) -> None:
    rows, chosen = table(env), values(env)
    nodes = zones() * Decimal(chosen["NodeDesiredSizePerZone"])
    assert quantity(rows, f"EC2 nodes {chosen['NodeInstanceType']}") == nodes
    assert quantity(rows, "EBS gp3, node volumes") == nodes * Decimal(chosen["NodeVolumeGiB"])
    # EBS bills GiB ("GB-month" on the price page is 2^30 bytes).
    prometheus = requested_gib("prometheus.yaml", "server", "persistentVolume", "size")
    assert quantity(rows, "EBS gp3, Prometheus volume") == prometheus
    alertmanager = requested_gib("prometheus.yaml", "alertmanager", "persistence", "size")
    assert quantity(rows, "EBS gp3, Alertmanager volume") == alertmanager
    assert quantity(rows, "WAF rules") == web_acl_rules()
    assert quantity(rows, "NAT gateway") == Decimal(chosen["NatGateways"])
    # One public address per NAT gateway, and the ALB's one per zone (three zones).
    assert quantity(rows, "public IPv4") == Decimal(chosen["NatGateways"]) + 3
    assert quantity(rows, f"RDS PostgreSQL {chosen['DbInstanceClass']} Multi-AZ") == 1
    assert quantity(rows, "RDS gp3 storage") == Decimal(chosen["DbAllocatedStorageGiB"])
    assert quantity(rows, "KMS keys") == resources("AWS::KMS::Key")
    # RDS manages the master secret itself; the others are the templates'.
    assert quantity(rows, "Secrets Manager") == 1 + resources("AWS::SecretsManager::Secret")
    assert quantity(rows, "CloudWatch alarms") == resources("AWS::CloudWatch::Alarm")
    assert quantity(rows, "CloudWatch dashboard") == resources("AWS::CloudWatch::Dashboard")


# The doc's assumption: each conformance pack rule evaluated about 300 times a month.
EVALUATIONS_PER_RULE = Decimal(300)
BASELINE_LINES = ("GuardDuty ", "Inspector ", "Config ", "Security Hub ")


def conformance_pack_rules() -> int:
    template = yaml.load((AWS / "templates" / "baseline.yaml").read_text(), Loader=_Tags)  # noqa: S506
    (pack,) = [
        r for r in template["Resources"].values() if r["Type"] == "AWS::Config::ConformancePack"
    ]
    return len(yaml.safe_load(pack["Properties"]["TemplateBody"])["Resources"])


@pytest.mark.parametrize("env", ["qa", "prod"])
def test_the_security_baseline_is_priced_where_it_is_enabled(env: str) -> None:
    """GuardDuty, Inspector, Config and Security Hub lines appear exactly for the environments
    whose EnableSecurityBaseline is true; the conformance pack's evaluations follow its rules."""
    rows = table(env)
    priced = sorted(item for item in rows if item.startswith(BASELINE_LINES))
    if values(env)["EnableSecurityBaseline"] != "true":
        assert priced == []
        return
    assert [p.split(" ", 1)[0] for p in priced].count("GuardDuty") == 4
    assert {p.split(" ", 1)[0] for p in priced} == {"GuardDuty", "Inspector", "Config", "Security"}
    evaluations = quantity(rows, "Config conformance pack evaluations")
    assert evaluations == conformance_pack_rules() * EVALUATIONS_PER_RULE


def sampling_ratio() -> Decimal:
    config = (ROOT / "deploy" / "k8s" / "base" / "config.env").read_text()
    return Decimal(re.search(r"^OTEL_TRACES_SAMPLER_ARG=([0-9.]+)$", config, re.M)[1])  # type: ignore[index]


@pytest.mark.parametrize("env", ["qa", "prod"])
def test_traces_recorded_are_the_sampled_share_of_the_requests(env: str) -> None:
    """X-Ray prices traces recorded, one per sampled request (https://aws.amazon.com/xray/pricing/);
    the requests are the WAF line's, the share is config.env's sampling ratio."""
    rows = table(env)
    requests = rows["WAF requests"][0]
    traces = rows["X-Ray traces recorded, the sampled share of the WAF requests"]
    assert traces[0] == requests * sampling_ratio()
    assert traces[1] == "million traces"


def test_make_bench_publish_rewrites_the_paragraph_for_its_rate() -> None:
    """`make bench PUBLISH=1` replaces docs/benchmarks.md and, from its rate, this paragraph's
    figures (benchmarks/trace_cost.py): the doc is what that rewrite gives, and another rate
    gives other figures in the same words."""
    doc = DOC.read_text()
    rate = trace_cost.achieved_rate((ROOT / "docs" / "benchmarks.md").read_text())
    assert trace_cost.rewrite(doc, rate) == doc
    other = trace_cost.rewrite(doc, 1000)
    assert "rate, 1000 req/s" in " ".join(other.split())
    assert "take 2628.00 million requests and record 131.40 million traces" in " ".join(
        other.split()
    )
    assert trace_cost.rewrite(other, rate) == doc


def test_the_cost_at_the_benchmarks_rate_follows_from_it() -> None:
    """The paragraph's figures from the rate docs/benchmarks.md measured, the sampling ratio and
    the price per million traces recorded."""
    benchmark = (ROOT / "docs" / "benchmarks.md").read_text()
    achieved = Decimal(re.search(r"achieved\s+(\d+) req/s", benchmark)[1])  # type: ignore[index]
    text = " ".join(DOC.read_text().split())
    found = re.search(
        r"rate, (\d+) req/s .*? take ([\d.]+) million requests and record ([\d.]+) million "
        r"traces: \$([\d.]+) a month; every request traced, .*?: \$([\d.]+)\.",
        text,
    )
    assert found, "the paragraph on traces at the benchmark's rate"
    rate, requests, traces, cost, every = (Decimal(g) for g in found.groups())
    assert rate == achieved
    cent = Decimal("0.01")
    month_requests = rate * 3600 * HOURS_A_MONTH / 1_000_000
    assert requests == month_requests.quantize(cent, ROUND_HALF_UP)
    assert traces == (month_requests * sampling_ratio()).quantize(cent, ROUND_HALF_UP)
    price = table("prod")["X-Ray traces recorded, the sampled share of the WAF requests"][2]
    assert cost == (month_requests * sampling_ratio() * price).quantize(cent, ROUND_HALF_UP)
    assert every == (month_requests * price).quantize(cent, ROUND_HALF_UP)
