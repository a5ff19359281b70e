"""Secrets and personal data out of logs: confirmation tokens, phone numbers, email addresses.

Every confirmation link is a bearer credential for one alert, and uvicorn's access log writes
every request path -- so ``/c/<token>`` becomes ``/c/[redacted]`` and any ``token=``/``csrf=``
value is dropped, before a handler formats the line.  Phone numbers and email addresses are
masked the way the console channel masks them (``+82••••••0001``, ``a••@example.com``).

:class:`RedactFilter` is attached to the handlers (root, uvicorn's) rather than to loggers, so it
also sees records that propagate from any library.  It rewrites the message *arguments* in place
(uvicorn's access formatter unpacks them) or the rendered message, never the level or the logger.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_LINK = re.compile(r"(/c/)[A-Za-z0-9_\-]{8,}")
_PARAM = re.compile(r"(?i)\b((?:token|csrf|access_token|signature)=)[^&\s\"']+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=\-]{8,}")
_PHONE = re.compile(r"(?<![\w+])\+\d{7,15}\b")
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+\b")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """The text with confirmation tokens removed and phone numbers and email addresses masked."""
    from notifiers.console import mask  # here: logging is set up by every command, the console channel is not

    text = _LINK.sub(r"\1" + REDACTED, text)
    text = _PARAM.sub(r"\1" + REDACTED, text)
    text = _BEARER.sub(r"\1" + REDACTED, text)
    text = _PHONE.sub(lambda m: mask(m.group()), text)
    return _EMAIL.sub(lambda m: mask(m.group()), text)


def _clean(v: Any) -> Any:
    return redact(v) if isinstance(v, str) else v


class RedactFilter(logging.Filter):
    """A handler filter: redacts the message and its arguments (it never drops a record)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("uvicorn.access") and isinstance(record.args, tuple):
            # uvicorn's access formatter unpacks the arguments: redact them one by one (the path
            # is one argument, whole)
            record.args = tuple(_clean(a) for a in record.args)
        else:
            # a token may be split between the format and an argument ("/c/%s"): redact the
            # rendered message
            try:
                message = record.getMessage()
            except Exception:  # a broken format string: leave it to the handler to report
                return True
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:  # a traceback may quote a URL or an address
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


def install(*loggers: str) -> None:
    """Add a :class:`RedactFilter` to every handler of the root logger and of ``loggers`` (once)."""
    for name in ("", *loggers):
        for h in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactFilter) for f in h.filters):
                h.addFilter(RedactFilter())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging configuration with the redaction filter on its handlers (access log included)."""
    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["redact"] = {"()": "vigil.redact.RedactFilter"}
    for handler in cfg.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "redact"]
    return cfg
