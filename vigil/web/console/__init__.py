"""The staff console at ``/console``: server-rendered pages (FastAPI + Jinja2) for security and
support staff -- alert queue, alert detail, account timeline, ticket queue, rule and delivery
health, surveys, audit -- in the staff member's language from the shared catalogue.

``mount(api, app)`` adds the routes and the handlers that turn "not signed in", "not allowed" and
"bad form token" into pages.  Plain JavaScript (``static/console.js``) draws the plots and ticks the
SLA countdowns; every page works without it except the plots themselves (their tables remain).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:  # the settings import this package's settings module: nothing heavy at import
    from fastapi import FastAPI

    from vigil.bootstrap import App


def mount(api: FastAPI, app: App) -> Any:
    """Add the console to ``api``; its :class:`~vigil.web.console.core.Console`, or None when disabled."""
    if not app.settings.web.console.enabled:
        return None
    from fastapi import Request
    from fastapi.responses import HTMLResponse, RedirectResponse

    from vigil.web.console import routes_main, routes_tickets
    from vigil.web.console.core import HEADERS, PREFIX, BadCsrf, Console, Forbidden, LoginRequired

    console = Console(app)
    api.include_router(routes_main.router(console))
    api.include_router(routes_tickets.router(console))

    @api.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/login?next={quote(exc.next_url, safe='')}", status_code=303,
                                headers=HEADERS)

    @api.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        return console.page(request, "error.html", status=403, message_key="console.forbidden", role=exc.role)

    @api.exception_handler(BadCsrf)
    async def _csrf(request: Request, exc: BadCsrf) -> HTMLResponse:
        return console.page(request, "error.html", status=400, message_key="console.bad_csrf", role="")

    return console
