"""``group``: one account's alerts within a window become one message; never a milder one swallowing a worse one."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from alerts.store.models import AlertEvent, AlertRow, OutboxRow
from rules.loader import DEFAULT_PACK
from tests.app.helpers import make_app, small_dir
from vigil.daemon import scan_until_caught_up
from vigil.importer import import_dir

GROUPED = """
version: 1
rules:
  - id: g-new-country
    detector: new_location
    when: finding.kind == "country"
    severity: high
    notify: {channels: [email], template: new_location}
    group: {window: 3h}
  - id: g-large-withdrawal
    detector: large_withdrawal
    severity: high
    notify: {channels: [email], template: large_withdrawal}
    group: {window: 3h}
  - id: g-margin
    detector: high_leverage
    severity: critical
    notify: {channels: [email], template: liquidation_risk}
    group: {window: 1d}
"""


def test_group_window_coalesces_across_rules(db_url: str, tmp_path: Path) -> None:
    pack = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, pack)
    for f in pack.glob("*.yaml"):
        text = f.read_text()
        f.write_text(text.split("\nrules:")[0] + "\nrules: []\n")  # keep parameters, drop the rules
    (pack / "grouped.yaml").write_text(GROUPED)
    app = make_app(db_url, rules_path=str(pack))
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    with app.sessions() as s:
        alerts = {a.rule_id: a for a in s.scalars(select(AlertRow).where(AlertRow.account_id == "A1"))}
        # the withdrawal an hour after the new-country login joins that alert: one message, both events
        assert "g-large-withdrawal" not in alerts
        assert alerts["g-new-country"].event_ids == ["A1-l9", "A1-t9"]
        grouped = s.scalars(select(AlertEvent).where(AlertEvent.event == "grouped")).all()
        assert [e.alert_id for e in grouped] == [alerts["g-new-country"].id]
        # the critical margin alert 3 days earlier is not folded into anything milder
        assert alerts["g-margin"].severity == "critical"
    app.close()


def test_one_withdrawal_matching_several_default_rules_asks_once(db_url: str, tmp_path: Path) -> None:
    """The default pack's withdrawal rules group by family in a 1-minute window: the large
    withdrawal to a new address after a new-country login matches several rules (large amount,
    risk score, new address) but the holder gets one "was this you?"; every rule's finding stays on
    that alert, and the login's own question is not folded into it."""
    app = make_app(db_url)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=1))
    scan_until_caught_up(app)
    with app.sessions() as s:
        rows = s.scalars(select(AlertRow).where(AlertRow.account_id == "A1")).all()
        about_wd = [a for a in rows if "A1-t9" in a.event_ids and a.mode == "live"]
        assert len(about_wd) == 1  # one alert names the withdrawal
        alert = about_wd[0]
        assert alert.confirm
        grouped = s.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert.id,
                                                     AlertEvent.event == "grouped")).all()
        rules_matched = {alert.rule_id} | {e.detail["rule_id"] for e in grouped}
        # several withdrawal rules matched; their findings were kept on the one alert
        assert len(rules_matched) >= 2 and all(r.startswith("withdrawal-") for r in rules_matched)
        assert len(alert.finding_ids) == len(rules_matched)
        prompts = s.scalars(select(OutboxRow).where(OutboxRow.alert_id.in_([a.id for a in rows if a.confirm]))).all()
        wd_outbox = [o for o in prompts if o.alert_id == alert.id]
        assert len(wd_outbox) == len(alert.channels)  # one message per channel, for the one alert
        # the new-country login an hour before keeps its own alert (a sign-in's question stays apart)
        login_alerts = [a for a in rows if "A1-l9" in a.event_ids and a.mode == "live"]
        assert login_alerts and all("A1-t9" not in a.event_ids for a in login_alerts)
    app.close()
