"""Shared by the console tests: a scanned small data set with staff accounts, and reading plots back."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from alerts.store.models import AlertRow  # noqa: F401  (re-exported for tests)
from tests.app.helpers import make_app, small_dir
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir
from vigil.staff import add_staff

PASSWORD = "correct horse battery staple"
STAFF = {"vera": "viewer", "ana": "analyst", "adam": "admin"}


def console_app(db_url: str, tmp_path: Path, **overrides: Any) -> Any:
    app = make_app(db_url, **overrides)
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=5))
    scan_until_caught_up(app)
    while deliver_once(app).claimed:
        pass
    with app.sessions.begin() as s:
        for name, role in STAFF.items():
            add_staff(s, name, PASSWORD, role, now=app.clock(), locale="en", actor="test")
    return app


def tables(page_html: str) -> dict[str, dict[str, Any]]:
    """Every plot's table view as {id: {spec, columns, rows}} and its figure JSON."""
    out: dict[str, dict[str, Any]] = {}
    for m in re.finditer(r'<details class="tableview" data-chart="([^"]+)" data-kind="([^"]*)" data-x="([^"]*)" '
                         r'data-y="([^"]*)" data-series="([^"]*)">(.*?)</details>', page_html, re.S):
        cid, kind, x, y, series, body = m.groups()
        cols = re.findall(r'<th scope="col" data-col="([^"]+)"', body)
        tbody = body.split("<tbody>", 1)[1]
        rows = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)]
                for tr in re.findall(r"<tr>(.*?)</tr>", tbody, re.S)]
        fig = re.search(rf'<script type="application/json" id="fig-{re.escape(cid)}">(.*?)</script>', page_html, re.S)
        out[cid] = {"kind": kind, "x": x, "y": [c for c in y.split(",") if c], "series": series or None,
                    "columns": cols, "rows": rows,
                    "figure": json.loads(fig.group(1).replace("<\\/", "</")) if fig else None}
    return out


def plotted_as_table(t: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    """What the table says each trace must hold: (name-or-column, x cells, y cells)."""
    cols, rows = t["columns"], t["rows"]

    def col(name: str, part: list[list[str]]) -> list[str]:
        return [r[cols.index(name)] for r in part]

    if t["kind"] == "geo":
        return [("geo", col("lat", rows), col("lon", rows))]
    if t["series"]:
        keys = list(dict.fromkeys(col(t["series"], rows)))
        return [(k, col(t["x"], [r for r in rows if r[cols.index(t["series"])] == k]),
                 col(t["y"][0], [r for r in rows if r[cols.index(t["series"])] == k])) for k in keys]
    return [(c, col(t["x"], rows), col(c, rows)) for c in t["y"]]


def traces_as_cells(fig: dict[str, Any]) -> list[tuple[list[str], list[str]]]:
    from vigil.web.console.charts import fmt_cell

    out = []
    for tr in fig["data"]:
        if tr["type"] == "scattergeo":
            out.append(([fmt_cell(v) for v in tr["lat"]], [fmt_cell(v) for v in tr["lon"]]))
        else:
            out.append(([fmt_cell(v) for v in tr["x"]], [fmt_cell(v) for v in tr["y"]]))
    return out
