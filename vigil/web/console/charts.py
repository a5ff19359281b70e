"""Plots built from tables: the table is the data, the Plotly figure is drawn from it.

A :class:`Chart` holds columns and rows -- what the page shows as the table view and what the CSV
download serves -- and a :class:`Plot` recipe that says which columns become which traces.  The
figure is computed from the rows, never from a second query, so a plot cannot disagree with its
table (a test reads both back from the page and compares them).

The figure goes into the page as JSON inside ``<script type="application/json">`` (data, not
code: the console's CSP allows scripts from 'self' only), and ``static/console.js`` draws it with
the ``plotly.min.js`` bundle served from the installed ``plotly`` Python package.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Plot:
    """``kind`` line/bar: x column, one trace per y column (or per value of ``series``);
    ``geo``: lat/lon columns with ``text`` for hover."""

    kind: Literal["line", "bar", "stacked", "geo"]
    x: str = ""
    y: tuple[str, ...] = ()
    series: str | None = None  # long format: one trace per distinct value of this column
    text: str | None = None
    y_title: str = ""


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    plot: Plot
    labels: dict[str, str] = field(default_factory=dict)  # column -> heading in the page's language

    def heading(self, col: str) -> str:
        return self.labels.get(col, col)

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    def figure(self) -> dict[str, Any]:
        """The Plotly figure (data + layout) drawn from :attr:`rows`."""
        p = self.plot
        layout: dict[str, Any] = {"margin": {"l": 50, "r": 10, "t": 10, "b": 40}, "height": 320,
                                  "legend": {"orientation": "h"}, "font": {"family": "system-ui, sans-serif"}}
        if p.kind == "geo":
            trace = {"type": "scattergeo", "lat": self.column("lat"), "lon": self.column("lon"),
                     "text": self.column(p.text) if p.text else None, "mode": "markers",
                     "marker": {"size": 8, "color": "#c5221f"}, "name": self.title}
            layout["geo"] = {"projection": {"type": "natural earth"}, "showcountries": True,
                             "showland": True, "landcolor": "#eef0f3", "countrycolor": "#9aa0a6"}
            layout["height"] = 380
            return {"data": [trace], "layout": layout}
        traces = []
        if p.series:
            keys = list(dict.fromkeys(self.column(p.series)))
            xi, si, yi = self.columns.index(p.x), self.columns.index(p.series), self.columns.index(p.y[0])
            for k in keys:
                pts = [r for r in self.rows if r[si] == k]
                traces.append(self._trace(str(k), [r[xi] for r in pts], [r[yi] for r in pts]))
        else:
            for col in p.y:
                traces.append(self._trace(self.heading(col), self.column(p.x), self.column(col)))
        if p.kind == "stacked":
            layout["barmode"] = "stack"
        layout["yaxis"] = {"title": {"text": p.y_title}, "rangemode": "tozero"}
        return {"data": traces, "layout": layout}

    def _trace(self, name: str, xs: list[Any], ys: list[Any]) -> dict[str, Any]:
        kind = "scatter" if self.plot.kind == "line" else "bar"
        trace: dict[str, Any] = {"type": kind, "name": name, "x": xs, "y": ys}
        if kind == "scatter":
            trace["mode"] = "lines+markers"
        return trace

    def figure_json(self) -> str:
        """For ``<script type="application/json">``: ``</`` escaped so the data cannot end the element."""
        return json.dumps(self.figure(), default=str, ensure_ascii=False).replace("</", "<\\/")

    def csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow(["" if v is None else _safe_cell(v) for v in r])
        return out.getvalue()


def _safe_cell(v: Any) -> Any:
    """No spreadsheet formulas from data (a rule id or comment starting with ``=``)."""
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@") and not _number(v):
        return "'" + v
    return v


def _number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def table_cells(chart: Chart) -> list[list[str]]:
    """The table view's cells as text (what the page prints): numbers kept exact."""
    return [[fmt_cell(v) for v in r] for r in chart.rows]


def fmt_cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if v != int(v) else str(int(v))
    return str(v)


def by_id(charts: Sequence[Chart], chart_id: str) -> Chart | None:
    return next((c for c in charts if c.id == chart_id), None)
