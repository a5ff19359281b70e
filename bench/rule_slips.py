"""How often a rule-file indentation slip is reported at the line that slipped.

For every non-comment line of every default-pack file, shift that one line by -2, -1, +1 or +2
spaces; of the shifts that break the YAML, count how often the parser's own position (before) and
``confkit.recover``'s first problem (after) name the shifted line.  About 90 s of CPU.

    .venv/bin/python bench/rule_slips.py
"""

from __future__ import annotations

from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from confkit import recover, yaml_message

PACK = Path(__file__).resolve().parent.parent / "rules" / "packs" / "default"


def main() -> None:
    tot = before = after = 0
    for f in sorted(PACK.glob("*.yaml")):
        lines = f.read_text().split("\n")
        for i, ln in enumerate(lines):
            s = ln.lstrip(" ")
            if not s or s.startswith("#"):
                continue
            for d in (-2, -1, 1, 2):
                n = len(ln) - len(s) + d
                if n < 0:
                    continue
                t = "\n".join([*lines[:i], " " * n + s, *lines[i + 1:]])
                try:
                    YAML(typ="rt").load(t)
                    continue
                except MarkedYAMLError as e:
                    tot += 1
                    before += yaml_message(e)[0] == i + 1
                after += recover(t, unit="rule").problems[0][0] == i + 1
    print(f"{tot} slips that break the YAML; at the slipped line: "
          f"before {before} ({before / tot:.1%}), after {after} ({after / tot:.1%})")


if __name__ == "__main__":
    main()
