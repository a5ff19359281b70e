"""``vigil run``: the daemon, on APScheduler 3.x.

Jobs: scan, deliver, escalate.  Each job has ``max_instances=1`` and ``coalesce=True``; a run
that APScheduler had to skip because the previous one overran is *logged with the gap* and never
loses work, because the next run reads from the cursor and loops until it has caught up (up to
``max_batches_per_run`` batches, then it reports the backlog).  SIGTERM and SIGINT stop the
scheduler gracefully: running jobs finish, nothing new starts.

Every failed run -- scan, deliver, escalate, rules -- is written to ``vigil_runs`` (status
``error``, with the error's class and message) through :class:`vigil.runs.RunLog`, which keeps
the rows in memory while the database is away and writes them once it answers again.

The deliver job pumps: it claims for the channels whose senders have room, hands the messages to
them and claims again as they free up, until nothing is ready or the interval is nearly over; the
senders keep working between runs, each channel at its own pace (``delivery.transmit.Lanes``).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler

from alerts.outbox import PENDING
from alerts.store.models import Run
from delivery.deliver import Deliverer
from delivery.escalate import EscalateReport, escalate_once
from vigil.bootstrap import App
from vigil.isolate import scan_guarded
from vigil.runs import RunLog, RunRecord, database_error, error_detail
from vigil.shards import Leases, Shard

log = logging.getLogger("vigil.daemon")
SCAN_CYCLE = "scan_cycle"  # Run.job of one cycle; /metrics (vigil.web.metrics) reads the same name


def scan_until_caught_up(app: App, *, max_batches: int | None = None, deliver: bool = True,
                         shard: Shard | None = None, holds: Callable[[Shard], bool] | None = None) -> dict[str, Any]:
    """Scan batch after batch until the source is exhausted; report totals and any backlog left.

    With ``scan.shards`` set and no ``shard`` given (``vigil scan --once``), every shard in turn;
    ``holds(shard)`` (the daemon's leases) is asked before each batch: a lost lease stops the loop.
    """
    if shard is None and app.settings.scan.shards > 0:
        from vigil.shards import all_shards

        return _sum_cycles([scan_until_caught_up(app, max_batches=max_batches, deliver=deliver, shard=sh)
                            for sh in all_shards(app.settings.scan.shards)])
    limit = max_batches or app.settings.daemon.max_batches_per_run
    totals: dict[str, Any] = {"batches": 0, "rows": 0, "alerts": 0, "quarantined": 0, "caught_up": False,
                              "scan_seconds": 0.0}
    started, t0 = app.clock(), time.perf_counter()
    for _ in range(limit):
        if shard is not None and holds is not None and not holds(shard):
            log.info("shard %s: lease lost; another replica continues from its cursor", shard.label())
            totals["caught_up"] = True  # nothing of this shard is ours to catch up
            break
        now = app.clock()
        rep = scan_guarded(app.sessions, app.source, _rules(app), now=now, batch_rows=app.settings.daemon.batch_rows,
                           deliver=deliver, geo=app.geo, shard=shard)
        totals["batches"] += 1
        totals["rows"] += rep.total_rows
        totals["alerts"] += len(rep.stage.created)
        totals["quarantined"] += len(rep.quarantined)
        totals["scan_seconds"] += rep.seconds
        for q in rep.quarantined[:20]:
            log.warning("quarantined %s: %s", q.ref, q.reason)
        if len(rep.quarantined) > 20:
            log.warning("... and %d more quarantined rows (table vigil_quarantine)", len(rep.quarantined) - 20)
        if rep.exhausted:
            totals["caught_up"] = True
            break
    drain = getattr(app.source, "drain_messages", None)  # a data directory's refused files and notes
    for level, message in drain() if drain is not None else []:
        log.log(level, "source: %s", message)
    if shard is not None:
        totals["shard"] = shard.label()
    if not totals["caught_up"]:
        log.warning("scan: backlog remains after %d batches; the next run continues from the cursor", limit)
    totals["seconds"] = round(time.perf_counter() - t0, 3)
    totals["scan_seconds"] = round(totals["scan_seconds"], 3)
    log.info("scan cycle: %d batch(es), %d row(s), %d alert(s), %d quarantined, %.3f s%s", totals["batches"],
             totals["rows"], totals["alerts"], totals["quarantined"], totals["seconds"],
             "" if totals["caught_up"] else "; backlog remains",
             extra={"event": "scan_cycle", **{k: totals[k] for k in (
                 "batches", "rows", "alerts", "quarantined", "caught_up", "seconds", "scan_seconds")}})
    with app.sessions.begin() as s:  # one row per cycle: /metrics reads cycles and the lag from here
        s.add(Run(job=SCAN_CYCLE, started_at=started, finished_at=app.clock(),
                  status="caught_up" if totals["caught_up"] else "backlog", detail=dict(totals)))
    return totals


def _sum_cycles(cycles: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"batches": 0, "rows": 0, "alerts": 0, "quarantined": 0, "caught_up": True,
                           "scan_seconds": 0.0, "seconds": 0.0, "shards": len(cycles)}
    for c in cycles:
        for k in ("batches", "rows", "alerts", "quarantined", "scan_seconds", "seconds"):
            out[k] += c[k]
        out["caught_up"] = out["caught_up"] and c["caught_up"]
    out["seconds"], out["scan_seconds"] = round(out["seconds"], 3), round(out["scan_seconds"], 3)
    return out


def scan_leased(app: App, leases: Leases) -> dict[str, Any]:
    """The sharded daemon's scan job: renew the leases, then catch up every shard this replica holds."""
    cycles = [scan_until_caught_up(app, shard=sh, holds=leases.holds) for sh in leases.heartbeat()]
    out = _sum_cycles(cycles)
    out["replica"] = leases.replica_id
    return out


def _rules(app: App) -> Any:
    return app.rules


def reload_rules(app: App) -> dict[str, Any]:
    """Re-validate the rule directory if it changed; a bad set is refused, the last good one keeps running.

    Every applied or refused set is recorded in ``vigil_rule_sets`` with its content hash; a refusal
    is logged with every error and queued for the staff channel (outbox channel ``escalate``).
    """
    from alerts.rule_sets import record_result
    from alerts.store.models import OutboxRow
    from detectors.base import stable_id

    now = app.clock()
    res = app.rule_manager.maybe_reload(now)
    if res.status == "unchanged":
        return {"status": "unchanged"}
    with app.sessions.begin() as s:
        record_result(s, app.rule_manager.path, res)
        if res.status == "refused":
            oid = stable_id("o", "rule-set-refused", res.content_hash)
            if s.get(OutboxRow, oid) is None:
                s.add(OutboxRow(id=oid, alert_id=None, account_id="-", channel="escalate", purpose="rules",
                                template="staff_escalation", priority=1, status=PENDING, next_attempt_at=now,
                                created_at=now, payload={"target": "security-staff", "trigger": "rule_set_refused",
                                                         "errors": [str(e) for e in res.errors][:50]}))
    if res.status == "refused":
        log.error("rule set at %s refused (%d errors); the last good set keeps running:\n%s",
                  app.rule_manager.path, len(res.errors), "\n".join(str(e) for e in res.errors),
                  extra={"event": "rule_set_refused", "hash": res.content_hash[:16], "errors": len(res.errors)})
    else:
        log.info("rule set %s applied from %s", res.content_hash[:12], app.rule_manager.path,
                 extra={"event": "rule_set_applied", "hash": res.content_hash[:16]})
    return {"status": res.status, "hash": res.content_hash[:16], "errors": len(res.errors)}


def escalate_all(app: App) -> EscalateReport:
    """The escalate job: unanswered alerts (delivery), then the ticket SLA tick (tickets)."""
    from tickets.escalation import sla_tick_report

    return escalate_once(app.sessions, now=app.clock(), sla=sla_tick_report)


def deliver_once(app: App, *, worker: str | None = None) -> Any:
    """``vigil deliver --once``: send everything that is ready, every channel at its own pace."""
    from delivery.channels import renderer

    d = Deliverer(app.sessions, app.settings, app.channels, renderer(), worker=worker)
    try:
        return d.drain(app.clock)
    finally:
        d.close()


class Daemon:
    def __init__(self, app: App, *, worker: str | None = None) -> None:
        self.app = app
        self.worker_prefix = worker  # the deliverer adds host:pid:random: never mistaken for another's lease
        self._deliverer: Deliverer | None = None
        self.stopped = threading.Event()
        self.runs = RunLog(app.sessions)
        self.scheduler = BackgroundScheduler(timezone="UTC", job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        self.last_finished: dict[str, datetime] = {}
        self.scheduler.add_listener(self._on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        sc = app.settings.scan
        if sc.shards > 0 and app.engine.dialect.name != "postgresql":
            from vigil.errors import ConfigError

            raise ConfigError(f"scan.shards: {sc.shards} needs a PostgreSQL database_url (the replicas lease shards "
                              f"through it); this one is {app.engine.dialect.name}. Set scan.shards: 0 for one scanner")
        self.leases = Leases(app.sessions, sc.shards, sc.lease_seconds, sc.replica_id) if sc.shards > 0 else None

    def _job(self, name: str, fn: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            self.runs.flush()  # rows kept while the database was away go first
            started = self.app.clock()
            try:
                detail = fn()
            except Exception as e:  # logged and recorded; the next run retries from the cursor
                if database_error(e) is not None:  # the database is away: one line per run, not a traceback
                    log.error("%s job failed: %s", name, error_detail(e)["error"],
                              extra={"event": "job_failed", "job": name})
                else:
                    log.exception("%s job failed", name, extra={"event": "job_failed", "job": name})
                self.last_finished[name] = finished = self.app.clock()
                self.runs.failure(name, started, finished, e)
                return
            self.last_finished[name] = finished = self.app.clock()
            if name not in ("scan", "leases"):  # scan records its own runs per batch, in the batch's transaction
                self.runs.add(RunRecord(name, started, finished, "ok", _plain(detail)))
        return run

    @property
    def deliverer(self) -> Deliverer:
        """One Deliverer for the daemon's life: its rate limiter remembers providers' 429s between
        runs, and its senders keep sending between runs."""
        if self._deliverer is None:
            from delivery.channels import renderer

            self._deliverer = Deliverer(self.app.sessions, self.app.settings, self.app.channels, renderer(),
                                        worker=self.worker_prefix, clock=self.app.clock)
        return self._deliverer

    def _deliver(self) -> dict[str, Any]:
        d = self.deliverer
        budget = max(0.5, self.app.settings.daemon.deliver_every_seconds * 0.9)
        deadline = time.monotonic() + budget
        claimed = 0
        while not self.stopped.is_set():
            n = d.pump(self.app.clock())
            claimed += n
            left = deadline - time.monotonic()
            if left <= 0 or (n == 0 and d.idle()):
                break
            if n == 0 or d.lanes.full():
                d.lanes.wait(min(0.5, left))  # until a sender frees up (or new rows may be ready)
        rep = d.collect()
        for f in d.take_failures():
            self.runs.add(RunRecord("deliver", f.at, f.at, "error",
                                    {"error_class": f.error_class, "error": f.error, "where": "sender"}))
        out = rep.summary()
        out["claimed_this_run"] = claimed
        out["in_progress"] = d.lanes.busy()
        return out

    def _on_event(self, event: JobEvent) -> None:
        if event.code in (EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED):
            last = self.last_finished.get(event.job_id)
            gap = (self.app.clock() - last).total_seconds() if last else None
            log.warning("job %s overran: a run was skipped (%.0f s since the last finished run); "
                        "the next run catches up from the cursor", event.job_id, gap or 0,
                        extra={"event": "job_gap", "job": event.job_id, "seconds_since_last": gap})
            now = self.app.clock()
            self.runs.add(RunRecord(event.job_id, now, now, "gap", {"seconds_since_last": gap}))

    def start(self) -> None:
        d = self.app.settings.daemon
        self.scheduler.add_job(self._job("rules", lambda: reload_rules(self.app)), "interval",
                               seconds=d.rules_reload_seconds, id="rules")
        if self.leases is not None:  # sharded: heartbeats on their own, so a long scan never loses its leases
            leases = self.leases
            self.scheduler.add_job(self._job("scan", lambda: scan_leased(self.app, leases)), "interval",
                                   seconds=d.scan_every_seconds, id="scan", next_run_time=self.app.clock())
            self.scheduler.add_job(self._job("leases", leases.heartbeat), "interval",
                                   seconds=max(0.2, leases.lease_seconds / 3), id="leases")
        else:
            self.scheduler.add_job(self._job("scan", lambda: scan_until_caught_up(self.app)), "interval",
                                   seconds=d.scan_every_seconds, id="scan", next_run_time=self.app.clock())
        self.scheduler.add_job(self._job("deliver", self._deliver),
                               "interval", seconds=d.deliver_every_seconds, id="deliver")
        self.scheduler.add_job(self._job("escalate", lambda: escalate_all(self.app).__dict__),
                               "interval", seconds=d.escalate_every_seconds, id="escalate")
        self.scheduler.start()
        log.info("vigil daemon started (scan every %ss, deliver every %ss)", d.scan_every_seconds,
                 d.deliver_every_seconds)

    def stop(self, *_: Any) -> None:
        if not self.stopped.is_set():
            log.info("stopping: waiting for running jobs to finish")
            self.stopped.set()

    def run_forever(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        self.start()
        try:
            while not self.stopped.wait(0.5):
                pass
        finally:
            self.scheduler.shutdown(wait=True)
            if self.leases is not None:
                try:
                    self.leases.release()
                except Exception as e:  # the database is away: the leases simply expire
                    log.warning("could not give the shard leases back (%s); they expire in %.0f s", e,
                                self.leases.lease_seconds)
            if self._deliverer is not None:
                self._deliverer.close(wait=True)  # sends under way finish; the rest is given back
            if not self.runs.flush():
                log.warning("%d run record(s) could not be written to vigil_runs", self.runs.pending())
            self.app.close()
            log.info("vigil daemon stopped")


def _plain(d: Any) -> Any:
    if isinstance(d, dict):
        return {str(k): _plain(v) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_plain(v) for v in d]
    if isinstance(d, str | int | float | bool) or d is None:
        return d
    return str(d)
