"""The console's plumbing: sessions from the cookie, CSRF, roles, pages in the staff member's language.

Every page needs a signed-in staff member (:meth:`Console.staff`); every POST also needs the form's
CSRF token (an HMAC of the session, :meth:`Console.check_csrf`) and a role (:meth:`Console.need`).
Cookies are HttpOnly and SameSite=Strict, and Secure unless the console runs in development
(``web.base_url`` plain http on a loopback host; ``web.console.cookie_secure`` overrides).
Pages carry a strict CSP: scripts from the console only, no inline script.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from alerts.tokens import hash_token
from notifiers import catalogue as cat
from notifiers.catalogue import N_
from vigil.bootstrap import App
from vigil.staff import Staff, audit, session_staff
from vigil.web.console.charts import fmt_cell

COOKIE = "vigil_console"
PRE_COOKIE = "vigil_console_pre"
PREFIX = "/console"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
       "object-src 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
LANGS = {"en": "English", "zh-CN": "简体中文", "zh-TW": "繁體中文", "ko": "한국어", "ja": "日本語"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# keys the templates build at run time (``console.<prefix>_<value>``), marked for extraction
DYNAMIC_KEYS = (
    N_("console.nav_alerts"), N_("console.nav_tickets"), N_("console.nav_rules"), N_("console.nav_delivery"),
    N_("console.nav_surveys"), N_("console.role_viewer"), N_("console.role_analyst"), N_("console.role_admin"),
    N_("console.forbidden"), N_("console.bad_csrf"), N_("console.not_found"),
    N_("console.f_rule"), N_("console.f_severity"), N_("console.f_status"), N_("console.f_locale"),
    N_("console.f_segment"), N_("console.status_active"), N_("console.status_frozen"),
    N_("console.msg_reason_needed"), N_("console.msg_frozen"), N_("console.msg_already_frozen"),
    N_("console.msg_unfrozen"), N_("console.msg_not_frozen"), N_("console.msg_retried"), N_("console.msg_refused"),
    N_("console.kind_login"), N_("console.kind_transfer"), N_("console.kind_position"), N_("console.kind_security"),
    N_("console.kind_alert"), N_("console.kind_answer"), N_("console.kind_freeze"), N_("console.kind_unfreeze"),
    N_("console.kind_ticket"), N_("console.move_ack"), N_("console.move_ask_user"), N_("console.move_close"),
    N_("console.move_reopen"), N_("console.code_false_positive"), N_("console.code_valuable"),
    N_("console.code_risk_confirmed"), N_("console.h_rules"), N_("console.h_delivery"), N_("console.h_surveys"),
)


class LoginRequired(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


class Forbidden(Exception):
    def __init__(self, role: str) -> None:
        self.role = role


class BadCsrf(Exception):
    pass


def t(locale: str, key: str, **values: Any) -> str:
    return cat.fill(cat.lookup(locale, key), values, key, missing="?")


def pick_lang(tag: str | None) -> str:
    """A console language from a tag or an Accept-Language header (first known wins)."""
    for part in (tag or "").split(","):
        code = part.split(";")[0].strip()
        if code:
            loc = cat.catalogue_locale(code)
            if loc != "en" or code.lower().startswith("en"):
                return loc
    return "en"


class Console:
    def __init__(self, app: App) -> None:
        self.app = app
        self.cfg = app.settings.web.console
        self.secret = app.settings.web.secret_key.get_secret_value().encode()
        self.env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                               autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
        self.env.filters["cell"] = fmt_cell
        self.env.filters["when"] = _when
        self.env.filters["short"] = lambda v, n=12: (str(v)[:n] + "…") if v and len(str(v)) > n else (v or "")

    # -- cookies and sessions ---------------------------------------------------------------------
    @property
    def secure(self) -> bool:
        mode = self.cfg.cookie_secure
        if mode != "auto":
            return mode == "always"
        url = urlsplit(self.app.settings.web.base_url)
        return not (url.scheme == "http" and (url.hostname or "") in _LOOPBACK)

    def set_cookie(self, resp: Response, name: str, value: str, *, max_age: int | None = None) -> None:
        resp.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="strict",
                        secure=self.secure)

    def staff(self, request: Request) -> Staff:
        """The signed-in staff member, or :class:`LoginRequired`."""
        token = request.cookies.get(COOKIE)
        now = self.app.clock()
        with self.app.sessions.begin() as s:
            who = session_staff(s, token, now=now, idle=timedelta(minutes=self.cfg.session_idle_minutes))
        if who is None:
            path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(path if request.method == "GET" else PREFIX + "/")
        request.state.staff = who
        request.state.csrf = self.csrf_for(token or "")
        return who

    def need(self, who: Staff, role: str) -> None:
        if not who.can(role):
            raise Forbidden(role)

    def csrf_for(self, session_token: str) -> str:
        return hmac.new(self.secret, b"console:" + hash_token(session_token).encode(), hashlib.sha256).hexdigest()[:40]

    def check_csrf(self, request: Request, value: str | None) -> None:
        expected = getattr(request.state, "csrf", None)
        if not expected or not hmac.compare_digest(expected, value or ""):
            raise BadCsrf()

    def pre_token(self, request: Request) -> str:
        """The login form's CSRF token: a random cookie value the form must repeat (double submit)."""
        return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)

    # -- audit --------------------------------------------------------------------------------------
    def audit(self, s: Any, request: Request, who: Staff, action: str, target_kind: str = "", target_id: str = "",
              **detail: Any) -> None:
        audit(s, actor=who.actor, role=who.role, action=action, target_kind=target_kind, target_id=target_id,
              detail=detail, now=self.app.clock(), ip=request.client.host if request.client else None)

    # -- pages --------------------------------------------------------------------------------------
    def page(self, request: Request, template: str, *, status: int = 200, lang: str | None = None,
             **ctx: Any) -> HTMLResponse:
        who: Staff | None = getattr(request.state, "staff", None)
        loc = lang or (who.locale if who else "en")
        tr: Callable[..., str] = lambda key, **kw: t(loc, key, **kw)  # noqa: E731
        html = self.env.get_template(template).render(
            t=tr, lang=loc, langs=LANGS, staff=who, csrf=getattr(request.state, "csrf", ""), prefix=PREFIX,
            path=request.url.path, now=self.app.clock(), brand=self.app.settings.branding, **ctx)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def back(self, url: str) -> RedirectResponse:
        """After a POST: back to a page of the console (never elsewhere)."""
        if not url.startswith(PREFIX + "/") or url.startswith("//") or "\\" in url:
            url = PREFIX + "/"
        return RedirectResponse(url, status_code=303, headers=HEADERS)


def _when(v: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if v is None:
        return "-"
    v = v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)
    return v.strftime(fmt)
