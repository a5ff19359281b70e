"""The confirmation page reads well in every locale, checked in Chromium on a narrow phone screen:
no word or number is broken across lines (only a string too long for the line, like an address,
may break), and time, place and amount are written exactly as in the user's email.  A screenshot per
locale and alert is kept under ``artifacts/screenshots/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from alerts.store.models import AccountRow, AlertRow
from notifiers.render import render
from tests.app.helpers import make_app, small_dir
from tests.web.test_confirm_page import ARTIFACTS, Served
from vigil.daemon import deliver_once, scan_until_caught_up
from vigil.importer import import_dir
from vigil.web.app import _message_context

pytestmark = pytest.mark.browser

# Every run of letters, digits and the punctuation inside numbers and times ("41,254.01", "5:23:19",
# "UTC+9"), and every Hangul word (Korean wraps between words): none may be split over two lines
# unless it is wider than its cell.
UNBREAKABLE = r"[A-Za-z0-9\uac00-\ud7a3](?:[A-Za-z0-9\uac00-\ud7a3.,:+%$€₩¥/-]*[A-Za-z0-9\uac00-\ud7a3%])?"
SPLIT_WORDS_JS = """(pattern) => {
  const re = new RegExp(pattern, "g");
  const split = [];
  for (const cell of document.querySelectorAll("h1, p, td, th, button")) {
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      for (const m of node.data.matchAll(re)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        const width = [...range.getClientRects()].reduce((w, r) => w + r.width, 0);
        if (lines.size > 1 && width < cell.clientWidth) split.push(m[0]);
      }
    }
  }
  return split;
}"""


@pytest.fixture
def served(tmp_path: Path, free_port: int) -> Iterator[tuple[Served, dict[str, str]]]:
    app = make_app(f"sqlite:///{tmp_path / 'page.db'}", web={"base_url": f"http://127.0.0.1:{free_port}"})
    import_dir(app.engine, small_dir(tmp_path / "data", bad_row=False, accounts=5))
    scan_until_caught_up(app)
    links: dict[str, str] = {}
    rep = deliver_once(app)
    while rep.claimed:
        for alert_id, channel, link in rep.links:
            if channel == "email":
                links[alert_id] = link
        rep = deliver_once(app)
    with Served(app, free_port) as s:
        yield s, links
    app.close()


def _email_rows(app: Any, alert: AlertRow) -> dict[str, str]:
    """The "What we saw" rows of the email the user got (rendered as the delivery job renders it)."""
    with app.sessions() as s:
        acct = s.get(AccountRow, alert.account_id)
    assert acct is not None
    ctx = {**_message_context(alert, acct, acct.locale or "en"), "link": "https://x.example/c/t"}
    text = render(alert.template, "email", acct.locale, ctx).text
    return dict(line[2:].split(": ", 1) for line in text.splitlines() if line.startswith("- ") and ": " in line)


# the rules whose alert asks about each case: the large withdrawal asks once, through withdrawal-large
# or withdrawal-risk-high (the withdrawal rules group by family; the most severe alert asks)
ASKING = {"login-new-country": ("login-new-country",), "withdrawal-large": ("withdrawal-large", "withdrawal-risk-high")}


@pytest.mark.parametrize("rule", ["login-new-country", "withdrawal-large"])
def test_no_mid_word_breaks_and_the_same_values_as_the_email(served, browser, rule: str) -> None:  # type: ignore[no-untyped-def]
    site, links = served
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 360, "height": 780})
    langs = []
    with site.app.sessions() as s:
        alerts = [a for a in s.scalars(select(AlertRow).where(AlertRow.rule_id.in_(ASKING[rule]))
                                       .order_by(AlertRow.account_id)) if a.id in links]
    assert len(alerts) == 5 and len({a.account_id for a in alerts}) == 5  # one question per account
    for alert in alerts:
        page.goto(links[alert.id])
        lang = page.get_attribute("html", "lang")
        langs.append(lang)
        page.screenshot(path=str(ARTIFACTS / f"confirm-{lang}-{rule}.png"), full_page=True)
        assert page.evaluate(SPLIT_WORDS_JS, UNBREAKABLE) == [], lang
        cells = page.locator("[data-testid=evidence] tr")
        shown = {cells.nth(i).locator("th").inner_text(): cells.nth(i).locator("td").inner_text()
                 for i in range(cells.count())}
        email = _email_rows(site.app, alert)
        same = {k for k in shown if k in email}
        assert len(same) >= 3, (shown, email)  # time, place or amount, and more
        for label in same:
            if alert.evidence.get("address") and email[label].count("…") == 1 and label != "IP":
                head, tail = email[label].split("…")
                assert shown[label].startswith(head) and shown[label].endswith(tail)  # the page shows it whole
            else:
                assert shown[label] == email[label], (lang, label)
    assert sorted(langs) == ["en", "ja", "ko", "zh-CN", "zh-TW"]
    page.close()


def test_the_old_mid_word_break_would_have_been_caught(served, browser) -> None:  # type: ignore[no-untyped-def]
    """The check is not vacuous: with ``word-break: break-all`` back on the cells, words split."""
    site, links = served
    with site.app.sessions() as s:
        alert = next(a for a in s.scalars(select(AlertRow).where(AlertRow.rule_id.in_(ASKING["withdrawal-large"]),
                                                                 AlertRow.account_id == "A3"))
                     if a.id in links)  # English
    page = browser.new_page(viewport={"width": 360, "height": 780})
    page.goto(links[alert.id])
    assert page.evaluate(SPLIT_WORDS_JS, UNBREAKABLE) == []
    page.add_style_tag(content="td, h1, p { word-break: break-all !important; }")
    assert page.evaluate(SPLIT_WORDS_JS, UNBREAKABLE) != []
    page.close()
