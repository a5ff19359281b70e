"""Structured logs: events with names and fields, as text or one JSON object per line.

Code logs with the standard library and puts its fields in ``extra=`` (``event`` names the
event)::

    log.info("scan cycle", extra={"event": "scan_cycle", "rows": 1200, "seconds": 0.41})

The ``log_format`` setting picks the formatter: ``text`` (the message, then ``key=value`` for each
field) or ``json`` (``ts``, ``level``, ``logger``, ``message`` and the fields, one object a line).
Both redact on the way out, so a secret never reaches a log line by mistake: values of fields
whose name says secret (``password``, ``token``, ``secret``, ``authorization``, ...), pydantic
``SecretStr`` values, the password part of URLs (``postgresql://user:***@host/db``), and what
:mod:`vigil.redact` removes (confirmation tokens, bearer values; phone numbers and emails masked).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

REDACTED = "***"
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"pass(word)?|secret|token|authori[sz]ation|api_?key|credential|private_key|auth_token",
                         re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^/\s@]+@", re.IGNORECASE)


def redact(key: str, value: Any) -> Any:
    """A field's value as it may be logged."""
    if _SECRET_KEY.search(key):
        return REDACTED
    if type(value).__name__ in ("SecretStr", "SecretBytes"):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {str(k): redact(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(key, v) for v in value]
    return value


def redact_text(text: str) -> str:
    """URL passwords, confirmation tokens, bearer values; phone numbers and emails masked."""
    from vigil.redact import redact as redact_personal

    return redact_personal(_URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}@", text))


def fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ``extra=`` fields of a record, redacted."""
    return {k: redact(k, v) for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_text(record.getMessage()),
            **fields(record),
        }
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact_text(super().format(record))
        extra = " ".join(f"{k}={_plain(v)}" for k, v in fields(record).items() if k != "event")
        return f"{line} [{extra}]" if extra else line


def _plain(v: Any) -> str:
    return v if isinstance(v, str) and " " not in v else json.dumps(v, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (click's test runner swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Log to stderr at ``level`` with the chosen formatter (replacing what was there)."""
    handler = _Stderr(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_vigil", False) or type(h) is logging.StreamHandler:
            root.removeHandler(h)
    handler._vigil = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from vigil.redact import install

    install()  # library records formatted by other handlers are redacted too
