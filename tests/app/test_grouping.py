"""``group``: one account's alerts within a window become one message; never a milder one swallowing a worse one."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import select

from alerts.store.models import AlertEvent, AlertRow
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
