"""What traces cost at the benchmark's rate: the paragraph of docs/aws.md that prices them.

Issue 19 asked for the cost of traces at the rate the benchmark measured. That rate is
docs/benchmarks.md's (achieved at half the peak), so `make bench PUBLISH=1` rewrites the
paragraph's figures from it whenever it replaces that page, and a test checks that the two agree.
The price per million traces is the prod cost table's, the share traced the sampling ratio of
deploy/facts/facts.yaml (which config.env is rendered from).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from deploy.facts.generate import fact

ROOT = Path(__file__).resolve().parents[1]
AWS_DOC = ROOT / "docs" / "aws.md"
HOURS_A_MONTH = Decimal(730)
CENT = Decimal("0.01")

_ACHIEVED = re.compile(r"achieved\s+(\d+) req/s")
_PRICE = re.compile(
    r"^\| X-Ray traces recorded, the sampled share of the WAF requests(?: \[\d+\])? "
    r"\| [\d.]+ \| [^|]+ \| ([\d.]+) \|",
    re.M,
)
# The figures, with whatever spacing the paragraph's line breaks put between the words.
_FIGURES = re.compile(
    r"(rate,\s+)(\d+)(\s+req/s\s.*?\stake\s+)([\d.]+)(\s+million\s+requests\s+and\s+record\s+)"
    r"([\d.]+)(\s+million\s+traces:\s+\$)([\d.]+)(\s+a\s+month;\s+every\s+request\s+traced,\s.*?:"
    r"\s+\$)([\d.]+)(\.)",
    re.S,
)


def achieved_rate(benchmarks_page: str) -> int:
    """The rate docs/benchmarks.md achieved at half the peak, in requests a second."""
    found = _ACHIEVED.search(benchmarks_page)
    if found is None:
        raise ValueError("no 'achieved N req/s' in the benchmarks page")
    return int(found[1])


def figures(rate: int, ratio: Decimal, price: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """A month at `rate`: millions of requests, millions of traces, their cost, and the cost of
    tracing every request."""
    requests = Decimal(rate) * 3600 * HOURS_A_MONTH / 1_000_000
    return (
        requests.quantize(CENT, ROUND_HALF_UP),
        (requests * ratio).quantize(CENT, ROUND_HALF_UP),
        (requests * ratio * price).quantize(CENT, ROUND_HALF_UP),
        (requests * price).quantize(CENT, ROUND_HALF_UP),
    )


def rewrite(aws_doc: str, rate: int) -> str:
    """docs/aws.md with the paragraph's figures computed for `rate`."""
    price = _PRICE.search(aws_doc)
    if price is None:
        raise ValueError("no X-Ray price in the prod cost table of docs/aws.md")
    ratio = Decimal(str(fact("sample_ratio")))
    requests, traces, cost, every = figures(rate, ratio, Decimal(price[1]))

    def figured(m: re.Match[str]) -> str:
        parts = list(m.groups())
        parts[1], parts[3], parts[5], parts[7], parts[9] = map(
            str, (rate, requests, traces, cost, every)
        )
        return "".join(parts)

    text, found = _FIGURES.subn(figured, aws_doc, count=1)
    if not found:
        raise ValueError("no paragraph on traces at the benchmark's rate in docs/aws.md")
    return text


def publish(benchmarks_page: str) -> None:
    """Rewrite docs/aws.md's figures for the page `make bench PUBLISH=1` just wrote."""
    text = AWS_DOC.read_text()
    AWS_DOC.write_text(rewrite(text, achieved_rate(benchmarks_page)))
