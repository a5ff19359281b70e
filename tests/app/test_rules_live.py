"""Rules in the running engine: hot reload keeps the last good set; user suppressions mute alerts."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from alerts.store.models import AlertEvent, AlertRow, OutboxRow, RuleSetRow, Suppression
from rules.loader import DEFAULT_PACK
from tests.app.helpers import T0, make_app, small_dir
from vigil.daemon import deliver_once, reload_rules, scan_until_caught_up
from vigil.importer import import_dir


def test_bad_rule_edit_is_refused_and_the_last_good_set_keeps_running(db_url: str, tmp_path: Path) -> None:
    pack = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, pack)
    app = make_app(db_url, rules_path=str(pack))
    good = app.rules.content_hash
    assert reload_rules(app)["status"] == "unchanged"
    f = pack / "logins.yaml"
    f.write_text(f.read_text().replace("severity: high", "severity: hihg", 1))
    res = reload_rules(app)
    assert res["status"] == "refused" and res["errors"] >= 1
    assert app.rules.content_hash == good  # still running the last good set
    with app.sessions() as s:
        row = s.scalars(select(RuleSetRow)).one()
        assert row.status == "refused" and "hihg" in str(row.errors)
        staff = s.scalars(select(OutboxRow).where(OutboxRow.channel == "escalate")).one()
        assert staff.payload["trigger"] == "rule_set_refused"
    assert reload_rules(app)["status"] == "unchanged"  # refused once, not on every tick
    deliver_once(app)  # no staff hook configured: the escalation goes to the log
    with app.sessions() as s:
        staff = s.scalars(select(OutboxRow).where(OutboxRow.channel == "escalate")).one()
        assert staff.status == "delivered" and staff.provider_id == "log"
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    assert scan_until_caught_up(app)["alerts"] > 0  # the old rules still alert
    f.write_text(f.read_text().replace("severity: hihg", "severity: critical", 1))
    assert reload_rules(app)["status"] == "applied"
    assert app.rules.content_hash != good
    with app.sessions() as s:
        assert [r.status for r in s.scalars(select(RuleSetRow).order_by(RuleSetRow.id))] == ["refused", "applied"]
    app.close()


def test_travel_notice_suppresses_the_new_country_alert_with_an_audit(db_url: str, tmp_path: Path) -> None:
    app = make_app(db_url)
    with app.sessions.begin() as s:
        s.add(Suppression(account_id="A1", kind="travel", value={"countries": ["BR"]},
                          starts_at=T0 + timedelta(days=5), expires_at=T0 + timedelta(days=10),
                          created_by="user", created_at=T0))
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=2))
    scan_until_caught_up(app)
    with app.sessions() as s:
        a1 = s.scalars(select(AlertRow).where(AlertRow.account_id == "A1",
                                              AlertRow.rule_id == "login-new-country")).one()
        a2 = s.scalars(select(AlertRow).where(AlertRow.account_id == "A2",
                                              AlertRow.rule_id == "login-new-country")).one()
        assert a1.status == "suppressed" and a2.status != "suppressed"
        audit = s.scalars(select(AlertEvent).where(AlertEvent.alert_id == a1.id,
                                                   AlertEvent.event == "suppressed")).one()
        assert audit.detail["kind"] == "travel"
        assert s.scalar(select(func.count()).select_from(OutboxRow).where(OutboxRow.alert_id == a1.id)) == 0
        # the withdrawal to an attacker's address is not covered by a travel notice: its one question
        # (the withdrawal rules group by family) is sent
        (wd,) = [a for a in s.scalars(select(AlertRow).where(AlertRow.account_id == "A1"))
                 if "A1-t9" in a.event_ids and a.mode == "live"]
        assert wd.status == "new" and wd.confirm and wd.rule_id.startswith("withdrawal-")
    app.close()
