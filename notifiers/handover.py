"""The moment a message is handed to its provider, reported to the delivery job.

The delivery job records each transmission *before* the first byte that could deliver it goes
out (``Channel.transmit``'s ``handover`` hook), so that a worker killed mid-call leaves a record
saying whether the provider may hold the message.  The later the hook runs, the smaller the
window in which a kill could leave a message recorded as handed over that never left: SMTP calls
it when the relay has answered ``354`` to ``DATA``; the HTTP channels (Twilio, FCM) call it from
the ``requests`` transport adapter, right before the request is written to the socket.

:class:`Handover` wraps the job's hook: called at most once; an exception from the hook (the
job's lease is gone) is kept in ``refused`` and must be re-raised by ``transmit`` after the SDK
has swallowed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_CURRENT: ContextVar[Handover | None] = ContextVar("vigil_handover", default=None)


class Handover:
    def __init__(self, hook: Callable[[], None]) -> None:
        self.hook = hook
        self.done = False
        self.refused: BaseException | None = None

    def __call__(self) -> None:
        if self.done:
            return
        try:
            self.hook()
        except Exception as e:
            self.refused = e
            raise
        self.done = True

    def raise_refusal(self) -> None:
        if self.refused is not None:
            raise self.refused


@contextmanager
def handing_over(h: Handover) -> Iterator[Handover]:
    """While the block runs, a :class:`HandoverAdapter` in this thread calls ``h`` before a POST."""
    token = _CURRENT.set(h)
    try:
        yield h
    finally:
        _CURRENT.reset(token)


def _adapter_class() -> type:
    """:class:`HandoverAdapter`, defined on first use: ``requests`` is imported by the channels that
    send through it, not by everything that imports the :class:`Handover` hook."""
    from requests.adapters import HTTPAdapter

    class HandoverAdapter(HTTPAdapter):
        """A ``requests`` transport adapter that calls the current :class:`Handover` right before it
        writes a POST (the SDKs' message-creating calls); every other request passes untouched."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            h = _CURRENT.get()
            if h is not None and (request.method or "").upper() == "POST":
                h()
            return super().send(request, *args, **kwargs)

    globals()["HandoverAdapter"] = HandoverAdapter
    return HandoverAdapter


def __getattr__(name: str) -> Any:
    if name == "HandoverAdapter":
        return globals().get("HandoverAdapter") or _adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def mount(session: Any, *, max_retries: int = 0) -> None:
    """Route a ``requests`` session's HTTP and HTTPS through a :class:`HandoverAdapter`."""
    adapter = __getattr__("HandoverAdapter")(max_retries=max_retries)
    for prefix in ("https://", "http://"):
        session.mount(prefix, adapter)
