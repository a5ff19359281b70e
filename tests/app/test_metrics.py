"""``/metrics`` served by the web app reports what a separate ``vigil run`` process did."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from alerts.store.models import Delivery, RuleSetRow
from rules.loader import DEFAULT_PACK
from tests.app.helpers import make_app, small_dir, start_daemon, stop_daemon, wait_until
from vigil.importer import import_dir
from vigil.web.app import create_app


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def test_serve_reports_the_daemons_scans_deliveries_and_refused_rule_set(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'metrics.db'}"
    rules = tmp_path / "rules"
    shutil.copytree(DEFAULT_PACK, rules)
    app = make_app(db, rules_path=str(rules))
    import_dir(app.engine, small_dir(tmp_path / "data"))
    proc = start_daemon(tmp_path, db, f"rules_path: {rules}\n")
    try:
        def delivered() -> bool:
            with app.sessions() as s:
                return bool(s.scalar(select(func.count()).select_from(Delivery)))
        assert wait_until(delivered, 90), "the daemon scanned and delivered"
        (rules / "zz-broken.yaml").write_text("rules:\n  - id: broken\n    detector: new_locaton\n    severity: high\n")

        def refused() -> bool:
            with app.sessions() as s:
                q = select(func.count()).select_from(RuleSetRow).where(RuleSetRow.status == "refused")
                return bool(s.scalar(q))
        assert wait_until(refused, 90), "the daemon refused the broken rule set"
    finally:
        out = stop_daemon(proc)
    assert "rule set at" in out and "refused" in out  # logged with its errors

    served = make_app(db, clock=lambda: datetime.now(UTC))  # `vigil serve`: nothing shared but the database
    with TestClient(create_app(served)) as client:
        r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = _samples(r.text)
    assert m[("vigil_rule_set_refused_total", ())] == 1.0
    assert m[("vigil_rule_set_applied_total", ())] == 0.0  # the daemon started on it; no later change applied
    assert m[("vigil_scan_cycles_total", (("result", "caught_up"),))] >= 1
    assert m[("vigil_scan_batches_total", (("status", "ok"),))] >= 1
    assert 0 <= m[("vigil_source_lag_seconds", ())] < 3600
    assert sum(v for (name, labels), v in m.items() if name == "vigil_deliveries_total") >= 1
    assert ("vigil_outbox_depth", ()) in m and ("vigil_outbox_oldest_age_seconds", ()) in m
    assert ("vigil_sla_breaches_total", ()) in m
    served.close()
    app.close()
