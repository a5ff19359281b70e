"""``vigil serve``: the public listener, and the internal one when ``web.internal_port`` is set.

Both run in one process on one event loop (two ``uvicorn.Server`` instances), with the logging
configuration of :func:`vigil.redact.uvicorn_log_config`, so no access-log line carries a
confirmation token, a phone number or an email address.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vigil.bootstrap import App


def serve(app: App, *, host: str | None = None, port: int | None = None, log_level: str = "info") -> None:
    import uvicorn

    from vigil.redact import uvicorn_log_config
    from vigil.web.app import create_app, create_internal_app

    web = app.settings.web
    public = create_app(app)
    configs: list[Any] = [uvicorn.Config(public, host=host or web.host, port=port or web.port, log_level=log_level,
                                         log_config=uvicorn_log_config())]
    if web.internal_port is not None:
        configs.append(uvicorn.Config(create_internal_app(app, public), host=web.internal_host,
                                      port=web.internal_port, log_level=log_level, log_config=uvicorn_log_config()))
    servers = [uvicorn.Server(c) for c in configs]
    try:
        if len(servers) == 1:
            servers[0].run()
        else:
            async def both() -> None:
                await asyncio.gather(*(s.serve() for s in servers))

            asyncio.run(both())
    finally:
        app.close()
