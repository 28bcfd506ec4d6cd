"""Prometheus metrics: process-local instruments, plus a collector that reads shared state at scrape time.

Counts that several processes contribute to (sync rows, job outcomes, queue depths) are read from the
database and Redis when scraped, so every web process reports the same, correct totals.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from connector.infra.models import Delivery, DeliveryAttempt, Merchant, SyncRun
from connector.infra.runtime import Runtime

logger = logging.getLogger(__name__)

HTTP_REQUESTS = Counter("storelink_http_requests", "HTTP requests handled", ["method", "endpoint", "status"])
HTTP_LATENCY = Histogram(
    "storelink_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INBOUND_REJECTED = Counter(
    "storelink_inbound_rejected",
    "Store webhook deliveries refused before anything was stored, by store kind and problem code",
    ["source", "code"],
)

SYNC_OUTCOMES = ("created", "updated", "unchanged", "deleted", "failed_rows")
ATTEMPT_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


class StateCollector(Collector):
    """Reads queue depths, job registries, sync counts and merchant states when Prometheus scrapes."""

    def __init__(self, rt: Runtime):
        self.rt = rt

    def collect(self) -> Iterator[Metric]:
        yield from self._queues()
        yield from self._database()

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("storelink_queue_depth", "Jobs waiting per queue", labels=["queue"])
        jobs = GaugeMetricFamily(
            "storelink_jobs", "Jobs per queue and registry state", labels=["queue", "state"]
        )
        try:
            for name, count in self.rt.queues.depths().items():
                depth.add_metric([name], count)
            for (name, state), count in self.rt.queues.registry_counts().items():
                jobs.add_metric([name, state], count)
        except Exception as exc:
            logger.warning("queue metrics unavailable", extra={"error": str(exc)})
        yield depth
        yield jobs

    def _database(self) -> Iterator[Metric]:
        rows = CounterMetricFamily(
            "storelink_sync_rows", "Catalog rows by outcome, all runs", labels=["outcome"]
        )
        events = CounterMetricFamily("storelink_sync_events", "Domain events emitted by syncs")
        runs = GaugeMetricFamily("storelink_sync_runs", "Sync runs by status", labels=["status"])
        merchants = GaugeMetricFamily("storelink_merchants", "Merchants by status", labels=["kind", "status"])
        try:
            with self.rt.db.session() as session:
                totals = session.execute(
                    select(
                        *[func.coalesce(func.sum(getattr(SyncRun, o)), 0) for o in SYNC_OUTCOMES],
                        func.coalesce(func.sum(SyncRun.events_emitted), 0),
                    ).where(SyncRun.dry_run.is_(False))
                ).one()
                for outcome, value in zip(SYNC_OUTCOMES, totals[:-1], strict=True):
                    rows.add_metric([outcome], int(value))
                events.add_metric([], int(totals[-1]))
                for status, count in session.execute(
                    select(SyncRun.status, func.count()).group_by(SyncRun.status)
                ):
                    runs.add_metric([status], count)
                for kind, status, count in session.execute(
                    select(Merchant.kind, Merchant.status, func.count()).group_by(
                        Merchant.kind, Merchant.status
                    )
                ):
                    merchants.add_metric([kind, status], count)
        except Exception as exc:
            logger.warning("database metrics unavailable", extra={"error": str(exc)})
        yield from (rows, events, runs, merchants)
        yield from self._deliveries()

    def _deliveries(self) -> Iterator[Metric]:
        deliveries = GaugeMetricFamily(
            "storelink_webhook_deliveries", "Webhook deliveries by status", labels=["status"]
        )
        attempts = CounterMetricFamily(
            "storelink_webhook_attempts", "Webhook delivery attempts by outcome", labels=["outcome"]
        )
        latency = CounterMetricFamily(
            "storelink_webhook_attempt_duration_ms", "Summed duration of webhook delivery attempts"
        )
        histogram = HistogramMetricFamily(
            "storelink_webhook_attempt_duration_seconds", "Duration of webhook delivery attempts"
        )
        try:
            with self.rt.db.session() as session:
                for status, count in session.execute(
                    select(Delivery.status, func.count()).group_by(Delivery.status)
                ):
                    deliveries.add_metric([status], count)
                succeeded = DeliveryAttempt.status_code.between(200, 299)
                duration = DeliveryAttempt.duration_ms
                ok, failed, total_ms, *under = session.execute(
                    select(
                        func.count().filter(succeeded),
                        func.count().filter(~succeeded | DeliveryAttempt.status_code.is_(None)),
                        func.coalesce(func.sum(duration), 0),
                        *(func.count().filter(duration <= bound) for bound in ATTEMPT_BUCKETS_MS),
                    )
                ).one()
                attempts.add_metric(["success"], ok)
                attempts.add_metric(["failure"], failed)
                latency.add_metric([], int(total_ms))
                buckets = [(str(bound / 1000), n) for bound, n in zip(ATTEMPT_BUCKETS_MS, under, strict=True)]
                histogram.add_metric([], [*buckets, ("+Inf", ok + failed)], int(total_ms) / 1000)
        except Exception as exc:
            logger.warning("delivery metrics unavailable", extra={"error": str(exc)})
        yield from (deliveries, attempts, latency, histogram)


def scrape_registry(rt: Runtime) -> CollectorRegistry:
    """A registry for one scrape: this process's (or all gunicorn workers') instruments plus shared state."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(HTTP_REQUESTS)
        registry.register(HTTP_LATENCY)
        registry.register(INBOUND_REJECTED)
    registry.register(StateCollector(rt))
    return registry
