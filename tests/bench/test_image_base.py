"""`make bench-image` reads wrk's report (wg/wrk, src/wrk.c: main's summary, print_stats_latency):
throughput, the 99th percentile, and every failed request, socket errors included."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks import image_base

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:40000/data/1
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    18.20ms    5.10ms  60.00ms   80.00%
    Req/Sec   880.00    100.00     1.00k    70.00%
  Latency Distribution
     50%   17.00ms
     75%   20.00ms
     90%   25.00ms
     99%    1.20s
  8800 requests in 10.00s, 1.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 3
Requests/sec:    877.12
Transfer/sec:    150.00KB
"""


def test_throughput_p99_and_every_kind_of_failure_are_read() -> None:
    load = image_base.parse_wrk(WRK_OUTPUT)

    assert load == image_base.Load(rps=877.12, p99_ms=1200.0, requests=8800, errors=6)


def test_a_clean_run_has_no_errors() -> None:
    clean = "\n".join(
        line for line in WRK_OUTPUT.splitlines() if "errors" not in line and "Non-2xx" not in line
    )

    assert image_base.parse_wrk(clean).errors == 0


def test_output_without_the_figures_is_an_error_not_a_zero() -> None:
    with pytest.raises(RuntimeError, match="unexpected wrk output"):
        image_base.parse_wrk("unable to connect to 127.0.0.1:40000 Connection refused\n")


def test_cpu_time_is_read_in_seconds_from_cgroup_v1_and_v2_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cgroup v1 cpuacct.usage counts nanoseconds; v2 cpu.stat's usage_usec microseconds
    (kernel Documentation/admin-guide/cgroup-v1/cpuacct.rst, cgroup-v2.rst)."""
    (tmp_path / "v1" / "a").mkdir(parents=True)
    (tmp_path / "v1" / "a" / "cpuacct.usage").write_text("2500000000\n")
    (tmp_path / "v2" / "b").mkdir(parents=True)
    (tmp_path / "v2" / "b" / "cpu.stat").write_text(
        "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
    )
    monkeypatch.setattr(
        image_base,
        "CPU_ACCOUNTS",
        ((f"{tmp_path}/v1/{{id}}/cpuacct.usage", 1e-9), (f"{tmp_path}/v2/{{id}}/cpu.stat", 1e-6)),
    )

    assert image_base.cpu_seconds("a") == pytest.approx(2.5)
    assert image_base.cpu_seconds("b") == pytest.approx(1.5)
    assert image_base.cpu_seconds("absent") is None
