"""What a source's ``read`` returns: shared by the SQL and the file sources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd


@dataclass
class ReadResult:
    raw: pd.DataFrame  # canonical column names + _ref + _cursor
    state: dict[str, Any]  # the cursor state after this read (committed with the batch)
    absent: frozenset[str]  # optional contract columns this source does not provide
    exhausted: bool  # True when fewer rows than the limit were available
    sharded: bool = False  # True when the source kept only the asked shard's rows (vigil/shards.py)
