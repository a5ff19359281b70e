"""The scan cycle on real databases: exactly-once, replay, crash and quarantine."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from alerts.store.models import AlertRow, Cursor, FindingRow, OutboxRow, Profile, QuarantineRow, Ticket
from tests.app.helpers import Clock, make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir


def _snapshot(app):  # type: ignore[no-untyped-def]
    with app.sessions() as s:
        alerts = sorted((a.id, a.rule_id, a.account_id, tuple(a.event_ids)) for a in s.scalars(select(AlertRow)))
        outbox = sorted(o.id for o in s.scalars(select(OutboxRow)))
        tickets = s.scalar(select(func.count()).select_from(Ticket))
    return alerts, outbox, tickets


def test_scan_creates_alerts_outbox_and_quarantine(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data"))
    totals = scan_until_caught_up(app)
    assert totals["caught_up"]
    alerts, outbox, tickets = _snapshot(app)
    rules = {(rule, acct) for _id, rule, acct, _ev in alerts}
    for acct in ("A1", "A2", "A3"):
        assert ("login-new-country", acct) in rules
        # the large withdrawal asks once: withdrawal-large or withdrawal-risk-high (they group by family)
        assert len([a for a in alerts if f"{acct}-t9" in a[3] and a[1].startswith("withdrawal-")]) == 1
        assert any(r.startswith("leverage-") and a == acct for r, a in rules)  # margin ratio 0.92
    new_country = [a for a in alerts if a[1] == "login-new-country" and a[2] == "A1"]
    assert new_country[0][3] == ("A1-l9",)
    assert outbox, "notifications are queued in the same transaction"
    assert tickets >= 3  # the withdrawal's question opens a deposit_withdrawal ticket per account
    with app.sessions() as s:
        q = {(r.row_ref, r.reason) for r in s.scalars(select(QuarantineRow))}
    assert ("logins#16", "unparseable timestamp in 'ts': yesterday-ish") in q or any(
        "yesterday-ish" in reason for _ref, reason in q)
    assert any("unknown kind 'withdraw'" in reason and "did you mean 'withdrawal'" in reason for _r, reason in q)
    app.close()


def test_second_scan_reads_nothing_and_replay_creates_no_duplicates(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data"))
    scan_until_caught_up(app)
    first = _snapshot(app)
    again = scan_until_caught_up(app)
    assert again["rows"] == 0
    assert _snapshot(app) == first
    # replay: rewind every cursor and drop the profiles' learned state changes -> same alerts, no new messages
    with app.sessions.begin() as s:
        s.execute(update(Cursor).values(state={}))
        s.execute(text("DELETE FROM vigil_profiles"))
    replay = scan_until_caught_up(app)
    assert replay["rows"] > 0 and replay["alerts"] == 0
    assert _snapshot(app) == first
    app.close()


def test_late_rows_are_processed_once(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    data = small_dir(tmp_path / "data", bad_row=False, accounts=1)
    import_dir(app.engine, data)
    scan_until_caught_up(app)
    with app.sessions() as s:
        n_findings = s.scalar(select(func.count()).select_from(FindingRow))
    # a row with an *older* event time arrives after the scan: it is still read, exactly once
    late = tmp_path / "late"
    late.mkdir()
    (late / "transactions.csv").write_text(
        "event_id,account_id,ts,kind,asset,amount\nlate-1,A1,2026-03-01T03:00:00Z,withdrawal,USDT,50000\n")
    import_dir(app.engine, late)
    assert scan_until_caught_up(app)["rows"] == 1
    with app.sessions() as s:
        after_late = s.scalar(select(func.count()).select_from(FindingRow))
        late_findings = [f for f in s.scalars(select(FindingRow)) if "late-1" in f.event_ids]
    assert after_late > n_findings and {f.detector for f in late_findings} >= {"large_withdrawal"}
    assert len(late_findings) == len({f.detector for f in late_findings})  # one finding per detector
    assert scan_until_caught_up(app)["rows"] == 0
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(FindingRow)) == after_late
        late_alerts = [a for a in s.scalars(select(AlertRow)) if "late-1" in a.event_ids]
    # one live question about the late withdrawal (the withdrawal rules group by family), raised once
    live = [a for a in late_alerts if a.mode == "live"]
    assert len(live) == 1 and live[0].rule_id.startswith("withdrawal-")
    app.close()


def test_id_gap_is_rechecked_until_the_row_commits(db_url: str, tmp_path: Path) -> None:
    """A row whose id was allocated before a later row but committed after the scan is not lost."""
    app = make_app(db_url)
    with app.engine.begin() as c:
        c.execute(text("INSERT INTO logins (ingest_seq, event_id, account_id, ts, success) "
                       "VALUES (1, 'e1', 'A1', '2026-03-01T00:00:00Z', 'true'), "
                       "(3, 'e3', 'A1', '2026-03-01T02:00:00Z', 'true')"))
    scan_until_caught_up(app)
    with app.sessions() as s:
        state = s.get(Cursor, "sql:logins").state  # type: ignore[union-attr]
    assert state["pos"] == 3 and "2" in state["gaps"]
    with app.engine.begin() as c:  # the slow transaction commits now
        c.execute(text("INSERT INTO logins (ingest_seq, event_id, account_id, ts, success) "
                       "VALUES (2, 'e2', 'A1', '2026-03-01T01:00:00Z', 'true')"))
    totals = scan_until_caught_up(app)
    assert totals["rows"] == 1
    with app.sessions() as s:
        prof = s.get(Profile, {"account_id": "A1", "detector": "new_location"})
        assert prof is not None and prof.state["n"] == 3
        assert s.get(Cursor, "sql:logins").state["gaps"] == {}  # type: ignore[union-attr]
    app.close()


def test_crash_before_commit_replays_to_the_same_alerts(db_url: str, tmp_path: Path) -> None:
    """Kill the scanning process after the alert stage, before commit; a rerun gives a clean run's result."""
    data = small_dir(tmp_path / "data")
    clean = make_app(db_url)
    import_dir(clean.engine, data)
    scan_until_caught_up(clean)
    expected = _snapshot(clean)
    expected_ids = [a[0] for a in expected[0]]
    with clean.sessions.begin() as s:  # start over in the same database
        for t in ("vigil_ticket_events", "vigil_tickets", "vigil_alert_events", "vigil_outbox", "vigil_alerts",
                  "vigil_findings", "vigil_profiles", "vigil_cursors", "vigil_quarantine", "vigil_accounts",
                  "vigil_runs"):
            s.execute(text(f"DELETE FROM {t}"))
    clean.close()
    script = textwrap.dedent(f"""
        import os, alerts.stage as stage, vigil.scan as scan
        from tests.app.helpers import make_app
        from vigil.daemon import scan_until_caught_up
        real = stage.apply_decisions
        def dying(*a, **kw):
            real(*a, **kw)
            os._exit(137)   # the process dies mid-transaction, nothing is committed
        scan.apply_decisions = dying
        scan_until_caught_up(make_app({db_url!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], env={**os.environ},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 137, proc.stderr
    app = make_app(db_url)
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AlertRow)) == 0
    scan_until_caught_up(app)
    got = _snapshot(app)
    assert [a[0] for a in got[0]] == expected_ids
    assert got == expected
    app.close()


@pytest.mark.parametrize("batch_rows", [3, 7])
def test_small_batches_give_the_same_alerts_as_one(db_url: str, tmp_path: Path, batch_rows: int) -> None:
    data = small_dir(tmp_path / "data", bad_row=False)
    one = make_app(db_url)
    import_dir(one.engine, data)
    scan_until_caught_up(one)
    expected = _snapshot(one)[0]
    with one.sessions.begin() as s:
        for t in ("vigil_ticket_events", "vigil_tickets", "vigil_alert_events", "vigil_outbox", "vigil_alerts",
                  "vigil_findings", "vigil_profiles", "vigil_cursors", "vigil_quarantine", "vigil_runs"):
            s.execute(text(f"DELETE FROM {t}"))
    one.close()
    many = make_app(db_url, clock=Clock(), daemon={"batch_rows": batch_rows, "max_batches_per_run": 1000})
    totals = scan_until_caught_up(many)
    assert totals["batches"] >= 3
    assert _snapshot(many)[0] == expected
    many.close()
