"""A state machine as a table (after h11's ``_state.py``): ``{state: {event: next_state}}``.

Alert lifecycle and ticket statuses share it; each names its own error for illegal moves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class TransitionTable:
    def __init__(self, transitions: Mapping[str, Mapping[str, str]], error: Callable[[str, str], Exception]) -> None:
        self.transitions = transitions
        self.error = error

    def apply(self, state: str, event: str) -> str:
        """The next state, or the table's error for an illegal move."""
        try:
            return self.transitions[state][event]
        except KeyError:
            raise self.error(state, event) from None

    def can(self, state: str, event: str) -> bool:
        return event in self.transitions.get(state, {})
