"""``vigil tune``: sweep a rule's main parameter on labelled data (see docs/rules.md, Tuning)."""

from __future__ import annotations

COMMANDS: list[object] = []
