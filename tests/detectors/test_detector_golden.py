"""Same answers after a rewrite: every detector's findings, skips and profiles on seeded data equal
the outputs stored from the implementation before it (``tests/detectors/golden``).

A change that alters answers on purpose (new semantics) regenerates the stored outputs with
``python -m tests.detectors.golden --write`` in the same commit, and says why in the message;
``python -m tests.detectors.golden --compare REF`` lists what changed against revision ``REF``.
"""

from __future__ import annotations

import json

from tests.detectors.golden import diff, load_golden, run_all


def test_outputs_equal_the_stored_golden_outputs() -> None:
    expected = load_golden()
    assert expected, "no stored golden outputs in tests/detectors/golden"
    actual = json.loads(json.dumps(run_all()))
    lines = diff(expected, actual)
    assert not lines, "detector outputs changed:\n" + "\n".join(lines[:80])
