"""Render one message: ``render(template, channel, locale, context) -> Rendered``.

Pure: no clock, no network; templates and catalogues are read from the package once.  The
delivery job builds ``context`` (``alert``, ``account``, ``link``, ``sms_code``, ``expires_at``,
``brand``); this module turns it into a *view* of formatted, cleaned values (times in the
account's zone, amounts and countries in its locale, attacker-controlled strings defanged) and
hands that view to ``templates/<template>/<channel>.<ext>.j2``.  ``coalesced`` (optional) is how
many held messages ride along in this one; the message then says so.  Wording comes from the locale
catalogues (:mod:`notifiers.catalogue`) through ``t("key", name=value)`` in the templates.

SMS is rendered at the most detailed *level* that fits the segment budget (3: everything, 2: no
device, 1: no "it was me" line, 0: headline, short deny line and anti-phishing code), and for
GSM-7 locales the evidence is folded to GSM-7 so one accented city does not switch the whole
message to UCS-2 (see :mod:`notifiers.sms_segments`).

Safety properties the tests hold every template to: the only URL in any message is the
confirmation ``link`` the caller passed; no message links to a password or 2FA form; SMS
carries reply codes (``N 4821``), never a bare ``YES``; the anti-phishing code is shown when
the account has one.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jinja2

from notifiers import catalogue as cat
from notifiers import formatting as fmt
from notifiers import sms_segments
from notifiers.names import TEMPLATE_DIR, available_templates

RENDER_CHANNELS = ("sms", "push", "email", "webhook", "console")
DEFAULT_SMS_SEGMENTS = 2
_FILES = {"sms": ("sms.txt.j2",), "push": ("push.txt.j2",), "email": ("email.txt.j2", "email.html.j2")}
_SMS_LEVELS = (3, 2, 1, 0)
_BLANKS = re.compile(r"\n{3,}")
NO_CONFIRM = frozenset({"freeze_guidance"})  # sent after the answer: nothing left to confirm
# about the holder's request, not an alert: a link or code (the survey's) but no confirm/deny actions
NOT_A_QUESTION = frozenset({"survey", "ticket_ack"})
_ROW_NEEDS = {"place": ("city", "country")}  # a place row only when one of them is known
MISSING = "?"  # an evidence value a message needs but the finding did not carry


class UnknownTemplateError(LookupError):
    def __init__(self, template: str, known: Sequence[str]) -> None:
        from confkit import closest

        close = closest(template, known)
        hint = f" Did you mean {close!r}?" if close else ""
        super().__init__(f"unknown message template {template!r}.{hint} Known: {', '.join(sorted(known))}")
        self.template = template


@dataclass(frozen=True)
class Rendered:
    """``subject`` is the email subject or push title (empty for SMS); ``data`` is the push
    payload's machine fields (all strings); ``segments`` counts SMS segments."""

    subject: str
    text: str
    html: str | None = None
    data: Mapping[str, str] = field(default_factory=dict)
    locale: str = cat.DEFAULT_LOCALE
    segments: int | None = None


@lru_cache(maxsize=8)
def _environment(template_dirs: tuple[str, ...]) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([*template_dirs, str(TEMPLATE_DIR)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


_KNOWN: dict[tuple[str, ...], tuple[float, set[str]]] = {}
KNOWN_TTL = 10.0  # seconds a directory listing is trusted: a delivery pass renders hundreds of messages


def _known(template_dirs: tuple[str, ...]) -> set[str]:
    """:func:`available_templates`, listed at most every ``KNOWN_TTL`` seconds (a template added
    to a directory shows up within that time)."""
    now = time.monotonic()
    hit = _KNOWN.get(template_dirs)
    if hit is None or now - hit[0] > KNOWN_TTL:
        hit = _KNOWN[template_dirs] = (now, available_templates(template_dirs))
    return hit[1]


def render(
    template: str,
    channel: str,
    locale: str | None,
    context: Mapping[str, Any],
    *,
    max_sms_segments: int = DEFAULT_SMS_SEGMENTS,
    template_dirs: Sequence[str] = (),
) -> Rendered:
    """Render ``template`` for ``channel`` in ``locale`` (falls back to English wording).

    ``webhook`` and ``console`` get the email's subject and text (no HTML).  Raises
    :class:`UnknownTemplateError` for a template that does not exist -- rule files are checked
    against :func:`available_templates` at load, so this is a programming error at send time.
    """
    known = _known(tuple(template_dirs))
    if template not in known:
        raise UnknownTemplateError(template, sorted(known))
    if channel not in RENDER_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {', '.join(RENDER_CHANNELS)}")
    env = _environment(tuple(template_dirs))
    loc = cat.catalogue_locale(locale or _get(context.get("account"), "locale"))
    if channel == "sms":
        return _render_sms(env, template, loc, locale, context, max_sms_segments)
    view = build_view(template, loc, locale, context, level=3, fold=False)
    subject = _t(loc, f"{template}.subject", view)
    if channel == "push":
        body = _lines(env.get_template(f"{template}/push.txt.j2").render(view))
        title = _t(loc, f"{template}.push_title", view)
        return Rendered(title, body, None, _push_data(template, loc, view, title, body), loc)
    text = _lines(env.get_template(f"{template}/email.txt.j2").render(view))
    html = env.get_template(f"{template}/email.html.j2").render(view) if channel == "email" else None
    data = _webhook_data(template, loc, view, context) if channel == "webhook" else {}
    return Rendered(subject, text, html, data, loc)


def _render_sms(
    env: jinja2.Environment,
    template: str,
    loc: str,
    tag: str | None,
    context: Mapping[str, Any],
    max_segments: int,
) -> Rendered:
    fold = sms_segments.is_gsm7("".join(v for k, v in cat.load(loc).items() if ".sms" in k))
    text, segs = "", 0
    for level in _SMS_LEVELS:
        view = build_view(template, loc, tag, context, level=level, fold=fold, compact=True)
        lines = env.get_template(f"{template}/sms.txt.j2").render(view).splitlines()
        text = _join_parts(loc, [x.strip() for x in lines if x.strip()])
        segs = sms_segments.segment_count(text)
        if segs <= max_segments:
            break
    return Rendered("", text, None, {}, loc, segs)


def build_view(
    template: str, loc: str, tag: str | None, context: Mapping[str, Any], *, level: int, fold: bool,
    compact: bool = False,
) -> dict[str, Any]:
    """The variables a template sees: formatted strings (or None), ``t`` and the raw context.
    ``compact`` (SMS) clips free text to the level's budget; email, push and the page get more room."""
    alert = context.get("alert") or {}
    account = context.get("account") or {}
    ev = _get(alert, "evidence") or {}
    bl = fmt.babel_locale(tag or _get(account, "locale"), loc)
    tz = fmt.zone(_get(account, "timezone"))
    ts = fmt.as_utc(_get(alert, "ts"))
    expires = fmt.as_utc(context.get("expires_at"))
    short = 14 if level == 0 else 18 if level < 3 else 24

    def clip(value: Any, limit: int) -> str | None:
        text = fmt.safe_text(value, limit)
        return sms_segments.fold_to_gsm(text) if (text and fold) else text

    city = clip(_get(ev, "city"), short)
    country = clip(fmt.country(_get(ev, "country"), bl), short)
    if city and country:
        place = _t(loc, "common.place", {"city": city, "country": country})
    else:
        place = city or country or _t(loc, "common.unknown_place", {})
    detector = str(_get(alert, "detector") or "")
    event_key = (
        f"events.{detector}" if f"events.{detector}" in cat.load(cat.DEFAULT_LOCALE) else "events.generic"
    )
    amount_ = fmt.amount(_get(ev, "amount"), _get(ev, "asset"), bl)
    value_usd = fmt.money(_get(ev, "amount_usd"), "USD", bl)
    view: dict[str, Any] = {
        "brand": fmt.safe_text(context.get("brand") or "Vigil", 24),
        "brand_color": _colour(context.get("brand_color")),
        "brand_logo": bool(context.get("brand_logo")),
        "ticket_ref": fmt.safe_text(context.get("ticket_ref"), 40),
        "locale": loc,
        "template": template,
        "level": level,
        "alert_id": str(_get(alert, "id") or ""),
        "severity": str(_get(alert, "severity") or ""),
        "kind": str(_get(alert, "kind") or ""),
        "detector": detector,
        "what": _t(loc, event_key, {}),
        "time_short": fmt.time_short(ts, tz, bl) if ts else None,
        "time_full": fmt.time_full(ts, tz, bl) if ts else None,
        "expires": fmt.time_short(expires, tz, bl) if expires else None,
        "place": place,
        "city": city,
        "country": country,
        "ip": clip(_get(ev, "ip"), 45),
        "device": clip(fmt.device(_get(ev, "device"), _get(ev, "user_agent"), _get(ev, "device_id")),
                       short if compact else 48),
        "amount": clip(amount_, 40) if amount_ else None,
        "value_usd": value_usd,
        "address": fmt.middle(_get(ev, "address")),
        "network": clip(_get(ev, "network"), 16),
        "symbol": clip(_get(ev, "symbol"), min(short, 20)),
        "leverage": fmt.leverage(_get(ev, "leverage"), bl),
        "margin_ratio": fmt.percent(_get(ev, "margin_ratio"), bl),
        "liquidation_price": fmt.number(_get(ev, "liquidation_price"), bl),
        "mark_price": fmt.number(_get(ev, "mark_price"), bl),
        "anti_phishing_code": fmt.safe_text(_get(account, "anti_phishing_code"), 32),
        "link": context.get("link") or None,
        "sms_code": str(context["sms_code"]) if context.get("sms_code") else None,
        "coalesced": _count(context.get("coalesced")),  # held messages riding along in this one
        "why": _why(loc, detector, ev),
    }
    if template in NO_CONFIRM:
        view["link"] = view["sms_code"] = None
    view["confirm"] = bool(view["link"] or view["sms_code"]) and template not in NOT_A_QUESTION
    view["rows"] = lambda spec: [
        (_t(loc, f"label.{name}", {}), view[name])
        for name in str(spec).split()
        if view.get(name) and any(view.get(dep) for dep in _ROW_NEEDS.get(name, (name,)))
    ]
    view["t"] = lambda key, **kw: _t(loc, key, {**view, **kw})
    return view


WHY_MIN_FACTOR = 1.5  # the withdrawal_risk factors the "why" row names (those its evidence text names)
WHY_MAX = 3


def _why(loc: str, detector: str, ev: Any) -> str | None:
    """A ``withdrawal_risk`` finding's strongest factors in the holder's words ("an address this
    account has not used before, most of your balance"), at most :data:`WHY_MAX`; None otherwise."""
    factors = _get(ev, "factors") if detector == "withdrawal_risk" else None
    if not isinstance(factors, Mapping):
        return None
    known = cat.load(cat.DEFAULT_LOCALE)
    strong: list[tuple[float, str]] = []
    for name, item in factors.items():
        try:
            f = float(_get(item, "factor") or 0.0)
        except (TypeError, ValueError):
            continue
        if f >= WHY_MIN_FACTOR and f"withdrawal_risk.factor_{name}" in known:
            strong.append((-f, str(name)))
    parts = [_t(loc, f"withdrawal_risk.factor_{name}", {}) for _f, name in sorted(strong)[:WHY_MAX]]
    if not parts:
        return None
    join = cat.lookup(loc, "common.list_join")
    text = parts[0]
    for part in parts[1:]:
        text = cat.fill(join, {"first": text, "next": part}, "common.list_join")
    return text


def _join_parts(loc: str, parts: list[str]) -> str:
    """An SMS's parts joined the locale's way (``"{first} {next}"``; no space in Chinese or Japanese)."""
    join = cat.lookup(loc, "common.sms_join")
    text = parts[0] if parts else ""
    for part in parts[1:]:
        text = cat.fill(join, {"first": text, "next": part}, "common.sms_join")
    return text


def evidence_rows(
    template: str, locale: str | None, context: Mapping[str, Any], *, template_dirs: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """The labelled rows the email lists under "What we saw", for the confirmation page: the same
    fields, labels and formatting as the message the user holds (times in their zone with the UTC
    offset, places and amounts in their locale), except that the page shows the whole address (the
    user compares it with their own; the message shows its ends).  An unknown template falls back
    to ``security_alert``'s fields."""
    known = available_templates(template_dirs)
    if template not in known:
        template = "security_alert"
    loc = cat.catalogue_locale(locale or _get(context.get("account"), "locale"))
    view = build_view(template, loc, locale, context, level=3, fold=False)
    ev = _get(context.get("alert"), "evidence") or {}
    if view.get("address"):
        view["address"] = fmt.safe_text(_get(ev, "address"), 120)
    tmpl = _environment(tuple(template_dirs)).get_template(f"{template}/email.txt.j2")
    block = tmpl.blocks.get("fields")
    spec = "".join(block(tmpl.new_context(view))) if block else ""
    rows: list[tuple[str, str]] = view["rows"](spec)
    return rows


def _t(loc: str, key: str, values: Mapping[str, Any]) -> str:
    return cat.fill(cat.lookup(loc, key), values, key, missing=MISSING)


def _push_data(template: str, loc: str, view: Mapping[str, Any], title: str, body: str) -> dict[str, str]:
    """The FCM data payload: the app builds the confirm/deny actions from it (Android has no
    server-side action buttons), or localises on the device from the loc keys and args."""
    data = {
        "type": "vigil.alert",
        "alert_id": view["alert_id"],
        "template": template,
        "kind": view["kind"],
        "severity": view["severity"],
        "locale": loc,
        "title": title,
        "body": body,
        "title_loc_key": f"vigil_{template}_title",
        "body_loc_key": f"vigil_{template}_body",
        "loc_args": json.dumps(
            [view["place"], view["time_short"] or "", view["amount"] or ""], ensure_ascii=False
        ),
        "actions": "confirm,deny" if view["confirm"] else "",
        "confirm_title": _t(loc, "common.action_confirm", view) if view["confirm"] else "",
        "deny_title": _t(loc, "common.action_deny", view) if view["confirm"] else "",
        "confirm_url": view["link"] or "",
    }
    return {k: v for k, v in data.items() if v}


def _webhook_data(
    template: str, loc: str, view: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, str]:
    """Machine fields for the exchange's own systems.  Not the confirmation link: it carries the
    user's single-use token, which only the user should hold."""
    alert = context.get("alert") or {}
    data = {
        "alert_id": view["alert_id"],
        "rule_id": str(_get(alert, "rule_id") or ""),
        "detector": view["detector"],
        "kind": view["kind"],
        "severity": view["severity"],
        "template": template,
        "locale": loc,
        "confirmation_requested": "true" if view["confirm"] else "false",
    }
    return {k: v for k, v in data.items() if v}


def _lines(text: str) -> str:
    return _BLANKS.sub("\n\n", "\n".join(line.rstrip() for line in text.strip().splitlines()))


def _colour(value: Any) -> str:
    """A ``#rrggbb`` colour for HTML email, else the default blue (settings validate it; this is
    the last guard before it is written into a style attribute)."""
    text = str(value or "")
    return text if re.fullmatch(r"#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?", text) else "#0969da"


def _count(value: Any) -> int | None:
    try:
        n = int(value or 0)
    except (TypeError, ValueError):
        return None
    return n if n > 0 else None


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)
