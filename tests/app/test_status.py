"""Every failure on record (issue 14 point 8): ``vigil_runs`` rows kept while the database is away,
``vigil status``, and the failure counter of ``/metrics``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from alerts.store.db import make_engine, session_factory, upgrade
from alerts.store.models import Base, OutboxRow, Run
from tests.app.helpers import make_app
from vigil.cli import main
from vigil.runs import RunLog, RunRecord, error_detail
from vigil.web.app import create_app

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)


def test_failed_runs_are_kept_until_the_database_answers_then_written_in_order(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")  # no tables yet: every write fails
    log = RunLog(session_factory(engine))
    try:
        with engine.connect() as c:
            c.exec_driver_sql("SELECT * FROM vigil_runs")
    except OperationalError as e:
        failure = e
    assert log.failure("scan", NOW, NOW, failure) is False
    assert log.add(RunRecord("deliver", NOW + timedelta(seconds=1), NOW + timedelta(seconds=1), "ok")) is False
    assert log.pending() == 2
    Base.metadata.create_all(engine)  # the database answers again
    assert log.flush() is True and log.pending() == 0
    with session_factory(engine)() as s:
        rows = list(s.scalars(select(Run).order_by(Run.id)))
    assert [(r.job, r.status) for r in rows] == [("scan", "error"), ("deliver", "ok")]
    assert rows[0].detail["error_class"] == "OperationalError"
    assert rows[0].detail["driver_error"] == "OperationalError" and "no such table" in rows[0].detail["error"]
    engine.dispose()


def test_a_full_buffer_drops_the_oldest_and_says_how_many(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'runs.db'}")
    log = RunLog(session_factory(engine), limit=3)
    for i in range(5):
        log.add(RunRecord("scan", NOW + timedelta(seconds=i), None, "error", {"error_class": "X", "error": str(i)}))
    Base.metadata.create_all(engine)
    assert log.flush()
    with session_factory(engine)() as s:
        rows = list(s.scalars(select(Run).order_by(Run.id)))
    assert [r.detail["error"] for r in rows] == ["2", "3", "4"] and rows[0].detail["runs_not_recorded"] == 2
    engine.dispose()


def test_a_wrapped_database_error_names_its_cause() -> None:
    from vigil.errors import SourceError

    try:
        try:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
        except OperationalError as e:
            raise SourceError(f"cannot read source table 'logins': {e}") from e
    except SourceError as e:
        d = error_detail(e)
    assert d["error_class"] == "SourceError" and d["cause_class"] == "OperationalError"
    assert d["driver_error"] == "ConnectionRefusedError" and "\n" not in d["error"]


def _seed(db: str) -> None:
    engine = make_engine(db)
    with session_factory(engine).begin() as s:
        s.add(Run(job="scan", started_at=NOW, finished_at=NOW, status="ok", detail={}))
        s.add(Run(job="scan", started_at=NOW, finished_at=NOW, status="error",
                  detail={"error_class": "SourceError", "cause_class": "OperationalError",
                          "error": "cannot read source table 'logins': connection refused"}))
        s.add(Run(job="deliver", started_at=NOW, finished_at=NOW, status="error",
                  detail={"error_class": "OperationalError", "error": "server closed the connection"}))
        for i, st in enumerate(("pending", "retry", "sent", "dead")):
            s.add(OutboxRow(id=f"o{i}", alert_id=None, account_id="A1", channel="sms", template="t", status=st,
                            next_attempt_at=NOW, created_at=NOW - timedelta(minutes=10 - i)))
    engine.dispose()


def test_vigil_status_shows_runs_failures_and_the_outbox(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'status.db'}"
    upgrade(db)
    _seed(db)
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"database_url: {db}\n")
    runner = CliRunner()
    r = runner.invoke(main, ["--config", str(cfg), "status", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert set(rep) == {"runs", "failures", "outbox"}
    assert rep["outbox"]["depth"] == 2 and rep["outbox"]["dead_letters"] == 1
    assert rep["outbox"]["oldest_pending_age_seconds"] > 600  # created 10 minutes before NOW, read now
    assert rep["runs"]["jobs"]["scan"]["last_status"] == "error"
    # the failure window is the last 24 h of *now*: these rows are from March, so none counts here
    assert rep["failures"]["total"] == 0
    r = runner.invoke(main, ["--config", str(cfg), "status"])
    assert r.exit_code == 0 and "depth 2 (pending, retry, held)" in r.output and "dead letters 1" in r.output


def test_status_counts_failures_by_job_and_cause(tmp_path: Path) -> None:
    from vigil.status import failure_counts, failures_section

    db = f"sqlite:///{tmp_path / 'status.db'}"
    upgrade(db)
    _seed(db)
    engine = make_engine(db)
    with session_factory(engine)() as s:
        f = failures_section(s, NOW + timedelta(hours=1))
        counts = failure_counts(s)
    engine.dispose()
    assert f["total"] == 2
    assert {(g["job"], g["error_class"]) for g in f["by_error"]} == {("scan", "OperationalError"),
                                                                    ("deliver", "OperationalError")}
    assert counts == [("deliver", "OperationalError", 1), ("scan", "OperationalError", 1)]


def test_status_with_the_database_away_is_one_line(tmp_path: Path) -> None:
    from tests.conftest import pick_free_port

    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"database_url: postgresql://postgres@127.0.0.1:{pick_free_port()}/nothing\n")
    r = CliRunner().invoke(main, ["--config", str(cfg), "status"])
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.startswith("vigil: cannot read the status from postgresql") and len(r.output.splitlines()) == 1


def test_metrics_count_failed_runs(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'metrics.db'}"
    app = make_app(db)
    _seed(db)
    with TestClient(create_app(app)) as client:
        body = client.get("/metrics").text
    failures = {(sample.labels["job"], sample.labels["error_class"]): sample.value
                for family in text_string_to_metric_families(body) if family.name == "vigil_job_failures"
                for sample in family.samples if sample.name == "vigil_job_failures_total"}
    assert failures == {("scan", "OperationalError"): 1.0, ("deliver", "OperationalError"): 1.0}
    app.close()
