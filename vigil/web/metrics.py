"""``/metrics``: Prometheus metrics that tell the truth about the daemon, whichever process serves them.

``vigil serve`` and ``vigil run`` are separate processes, so a counter kept in the daemon's memory
would read zero here.  Everything the daemon owns is therefore read from the database at scrape
time by one custom collector (``prometheus_client``): the ``vigil_rule_sets`` audit rows (applied
and refused sets), the ``vigil_runs`` rows (scan cycles, and the lag behind the source), the
outbox (depth and age of what waits), ``vigil_deliveries`` (attempts by channel and result) and
the ticket timeline (SLA breaches).  A scrape costs a handful of grouped ``COUNT`` queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from alerts.outbox import READY
from alerts.store.models import AlertRow, Delivery, OutboxRow, RuleSetRow, Run, TicketEvent
from vigil.daemon import SCAN_CYCLE


def _aware(dt: datetime | None) -> datetime | None:
    return dt.replace(tzinfo=UTC) if dt is not None and dt.tzinfo is None else dt


class StoreCollector(Collector):
    """Reads the daemon's state from the database on every scrape."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime],
                 rule_set_hash: Callable[[], str]) -> None:
        self.sessions = sessions
        self.clock = clock
        self.rule_set_hash = rule_set_hash

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self.sessions() as s:
            yield from self._rule_sets(s)
            yield from self._scans(s, now)
            yield from self._outbox(s, now)
            yield from self._deliveries(s)
            yield from self._alerts_and_tickets(s)
            yield from self._failures(s)
            yield from self._shards(s, now)

    def _shards(self, s: Session, now: datetime) -> Iterator[Metric]:
        """Sharded scanners (``vigil status`` section ``shards``); nothing when sharding is off."""
        from vigil.status import shards_section

        body = shards_section(s, now)
        if not body:
            return
        beat = GaugeMetricFamily("vigil_replica_heartbeat_age_seconds", "Seconds since each scanner replica's "
                                 "last heartbeat", labels=["replica"])
        held = GaugeMetricFamily("vigil_replica_shards", "Shards each replica holds a live lease on",
                                 labels=["replica"])
        for r in body["replicas"]:
            beat.add_metric([r["replica"]], float(r["heartbeat_age_seconds"] or 0.0))
            held.add_metric([r["replica"]], float(len(r["shards"])))
        yield beat
        yield held
        owned = GaugeMetricFamily("vigil_shard_owned", "1 if the shard has a live lease, 0 if it waits for a "
                                  "replica", labels=["shard", "replica"])
        behind = GaugeMetricFamily("vigil_shard_lag_ids", "Newest source id minus the shard's cursor, by table",
                                   labels=["shard", "table"])
        scanned = GaugeMetricFamily("vigil_shard_scanned_age_seconds", "Seconds since the shard's cursor last "
                                    "moved, by table", labels=["shard", "table"])
        for sh in body["shards"]:
            owned.add_metric([sh["shard"], sh["owner"] or ""], 0.0 if sh["owner"] is None else 1.0)
            for table, lag in sh["lag"].items():
                if lag["ids_behind"] is not None:
                    behind.add_metric([sh["shard"], table], float(lag["ids_behind"]))
                if lag["scanned_ago_seconds"] is not None:
                    scanned.add_metric([sh["shard"], table], float(lag["scanned_ago_seconds"]))
        yield owned
        yield behind
        yield scanned

    def _failures(self, s: Session) -> Iterator[Metric]:
        from vigil.status import failure_counts

        m = CounterMetricFamily("vigil_job_failures", "Failed job runs on record (vigil_runs), by job and error class",
                                labels=["job", "error_class"])
        for job, cls, n in failure_counts(s):
            m.add_metric([job, cls], float(n))
        yield m

    def _rule_sets(self, s: Session) -> Iterator[Metric]:
        counts: dict[str, int] = {
            str(k): int(v) for k, v in s.execute(select(RuleSetRow.status, func.count()).group_by(RuleSetRow.status))}
        for status in ("applied", "refused"):
            m = CounterMetricFamily(f"vigil_rule_set_{status}", f"Rule sets the daemon {status} (vigil_rule_sets)")
            m.add_metric([], float(counts.get(status, 0)))
            yield m
        info = GaugeMetricFamily("vigil_rule_set_info", "The rule set running here, by content hash",
                                 labels=["hash"])
        info.add_metric([self.rule_set_hash()[:16]], 1.0)
        yield info

    def _scans(self, s: Session, now: datetime) -> Iterator[Metric]:
        cycles = CounterMetricFamily("vigil_scan_cycles", "Scan cycles by result (caught_up, backlog)",
                                     labels=["result"])
        for status, n in s.execute(select(Run.status, func.count()).where(Run.job == SCAN_CYCLE)
                                   .group_by(Run.status)):
            cycles.add_metric([str(status)], float(n))
        yield cycles
        batches = CounterMetricFamily("vigil_scan_batches", "Scan batches (one transaction each) by status",
                                      labels=["status"])
        for status, n in s.execute(select(Run.status, func.count()).where(Run.job == "scan").group_by(Run.status)):
            batches.add_metric([str(status)], float(n))
        yield batches
        gaps = CounterMetricFamily("vigil_job_gaps", "Job runs skipped because the previous one overran",
                                   labels=["job"])
        for job, n in s.execute(select(Run.job, func.count()).where(Run.status == "gap").group_by(Run.job)):
            gaps.add_metric([str(job)], float(n))
        yield gaps
        last = _aware(s.scalar(select(func.max(Run.finished_at)).where(Run.job == SCAN_CYCLE,
                                                                       Run.status == "caught_up")))
        lag = GaugeMetricFamily("vigil_source_lag_seconds",
                                "Seconds since a scan cycle last caught up with the source (-1: never)")
        lag.add_metric([], (now - last).total_seconds() if last is not None else -1.0)
        yield lag

    def _outbox(self, s: Session, now: datetime) -> Iterator[Metric]:
        by_status = GaugeMetricFamily("vigil_outbox", "Outbox messages by status", labels=["status"])
        for status, n in s.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status)):
            by_status.add_metric([str(status)], float(n))
        yield by_status
        depth, oldest = s.execute(select(func.count(), func.min(OutboxRow.created_at))
                                  .where(OutboxRow.status.in_(READY))).one()
        yield GaugeMetricFamily("vigil_outbox_depth", "Messages waiting to be sent (pending, retry, held)",
                                value=float(depth or 0))
        age = (now - _aware(oldest)).total_seconds() if oldest is not None else 0.0  # type: ignore[operator]
        yield GaugeMetricFamily("vigil_outbox_oldest_age_seconds", "Age of the oldest waiting message",
                                value=max(age, 0.0))

    def _deliveries(self, s: Session) -> Iterator[Metric]:
        m = CounterMetricFamily("vigil_deliveries", "Delivery attempts and receipts by channel and result",
                                labels=["channel", "result"])
        for channel, status, n in s.execute(select(Delivery.channel, Delivery.status, func.count())
                                            .group_by(Delivery.channel, Delivery.status)):
            m.add_metric([str(channel), str(status)], float(n))
        yield m

    def _alerts_and_tickets(self, s: Session) -> Iterator[Metric]:
        alerts = GaugeMetricFamily("vigil_alerts", "Alerts by status", labels=["status"])
        for status, n in s.execute(select(AlertRow.status, func.count()).group_by(AlertRow.status)):
            alerts.add_metric([str(status)], float(n))
        yield alerts
        breaches = CounterMetricFamily("vigil_sla_breaches", "Ticket SLA clocks that breached")
        breaches.add_metric([], float(s.scalar(select(func.count()).select_from(TicketEvent)
                                               .where(TicketEvent.kind == "sla_breached")) or 0))
        yield breaches


def registry_for(app: Any) -> CollectorRegistry:
    """A registry of its own per web app (no process-global state), holding the store collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(app.sessions, app.clock, lambda: app.rules.content_hash))
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
