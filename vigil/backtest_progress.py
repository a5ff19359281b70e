"""The backtest's progress line, fed by the Dask scheduler: tasks done out of all, as events.

``distributed``'s own text bar reports (remaining, all) tasks of the futures' whole graph every
100 ms; this subclass draws them as the local engine's line (events, events/s, time left), the
events estimated as the share of finished tasks.
"""

from __future__ import annotations

from typing import Any, TextIO

from distributed.diagnostics.progressbar import TextProgressBar

from vigil.backtest import _Progress


class TaskProgress(TextProgressBar):  # type: ignore[misc]
    def __init__(self, futures: list[Any], out: TextIO, total_events: int) -> None:
        self._line = _Progress(out, total_events)
        self._tasks = (0, 0)
        super().__init__(futures, interval="250ms", complete=True)

    def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:
        done = all - remaining
        self._tasks = (done, all)
        line = self._line
        line.done_n = int(line.total * done / all) if all else 0
        line._show()
        line.out.write(f"[tasks {done}/{all}] ")
        line.out.flush()

    def _draw_stop(self, **kwargs: Any) -> None:
        self._line.done()
