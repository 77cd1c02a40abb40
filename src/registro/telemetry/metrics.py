"""Prometheus metrics, aggregated over every worker process.

With several workers each process writes its samples to files under PROMETHEUS_MULTIPROC_DIR and
`/metrics` merges them, so any worker answers for all. That variable must be set before
prometheus_client is imported (`registro serve` does it); without it, metrics are per process.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from registro.telemetry import logs

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter(
    "registro_http_requests", "HTTP requests answered.", ["method", "route", "status"]
)
LATENCY = Histogram(
    "registro_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "registro_http_requests_in_flight",
    "Requests being answered (sampled every second).",
    multiprocess_mode="livesum",
)
DB_POOL = Gauge(
    "registro_db_pool_connections",
    "Database connections by state.",
    ["state"],
    multiprocess_mode="livesum",
)
LOG_LINES_DROPPED = Counter(
    "registro_log_lines_dropped",
    "Log lines dropped because stdout did not keep up (the worker never waits for it).",
)
BUILD_INFO = Gauge(
    "registro_build_info",
    "Always 1; the labels say which build is running.",
    ["version", "commit"],
    multiprocess_mode="max",
)

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Counted in plain memory on the request path; published to IN_FLIGHT by sample().
in_flight = 0

_dropped_published = 0

_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    label = method if method in METHODS else "OTHER"  # bounds the cache as well as the labels
    key = (label, route, status)
    series = _series.get(key)
    if series is None:
        series = (
            REQUESTS.labels(label, route, str(status)),
            LATENCY.labels(label, route, str(status)),
        )
        _series[key] = series
    series[0].inc()
    series[1].observe(seconds)


def sample(pool_in_use: int, pool_idle: int) -> None:
    """Publish the gauges that change on every request, once per tick rather than per request."""
    global _dropped_published
    IN_FLIGHT.set(in_flight)
    dropped = logs.dropped_lines()
    if dropped > _dropped_published:
        LOG_LINES_DROPPED.inc(dropped - _dropped_published)
        _dropped_published = dropped
    DB_POOL.labels("in_use").set(pool_in_use)
    DB_POOL.labels("idle").set(pool_idle)


def exposition() -> bytes:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def forget_this_process() -> None:
    """Drop this worker's live gauges once it stops (their files would otherwise linger)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(os.getpid())
