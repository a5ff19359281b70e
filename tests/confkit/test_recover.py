"""Recovering after YAML syntax errors: every problem found, each at the line a person got wrong."""

from __future__ import annotations

import pytest

import confkit
from rules.loader import DEFAULT_PACK

THREE_BROKEN = """\
items:
  - name: a
    kind: one
   size: 3
  - name: b
    kind: two
  - name: c
    tags: [x, y
    size: 4
  - name: d
    note: starts: here
  - name: e
"""


def test_every_broken_entry_is_reported_and_left_out_the_rest_keeps_its_lines() -> None:
    r = confkit.recover(THREE_BROKEN, unit="item")
    assert r.problems == [
        (4, 4, "this line is indented 3 spaces but the lines around it use 4: "
               "line the keys of one item up under each other"),
        (9, 9, "the '[' opened at line 8, column 11 is not closed"),
        (11, 17, "an unexpected ':'; if the value contains ': ' put the whole value in quotes"),
    ]
    assert r.skipped == [(2, 4), (7, 9), (10, 11)]
    items = r.doc["items"]
    assert [i if i is None else i["name"] for i in items] == [None, "b", None, None, "e"]  # positions kept
    assert items.lc.item(1)[0] + 1 == 5 and items.lc.item(4)[0] + 1 == 12  # original line numbers
    assert r.skips(3) and not r.skips(5) and not r.skips(12)


def test_a_clean_file_is_loaded_as_is_and_the_guard_has_the_last_word() -> None:
    r = confkit.recover("a: 1\nb: [1, 2]\n")
    assert r.problems == [] and r.skipped == [] and r.doc == {"a": 1, "b": [1, 2]}
    seen: list[str] = []

    def guard(text: str) -> list[tuple[int, int, str]]:
        seen.append(text)
        return [(1, 1, "too big")] if "c: 3" in text else []

    r = confkit.recover("a: 1\n  b: 2\nc: 3\n", guard=guard)
    assert r.doc is None and r.problems[-1] == (1, 1, "too big") and len(seen) == 1
    seen.clear()
    r = confkit.recover("a:\n  - 1\n  - 2\n - 3\nb: 3\n", guard=guard)
    assert r.doc == {"a": [1, 2, None], "b": 3} and len(seen) == 2  # before each attempt to build the tree
    assert seen[1].split("\n")[3] == "  - ~"  # the second saw the broken item left out
    assert r.problems == [(4, 2, "this line is indented 1 space but the lines around it use 2: "
                                 "start the '- ' of every entry at the same column")]


def test_many_broken_entries_stop_at_the_cap_without_hanging() -> None:
    text = "items:\n" + "".join(f"  - name: n{i}\n    kind: k\n   size: {i}\n" for i in range(60))
    r = confkit.recover(text, max_problems=20)
    assert len(r.problems) == 20 and r.doc is None
    assert [p[0] for p in r.problems] == [4 + 3 * i for i in range(20)]


@pytest.mark.parametrize(("text", "expected"), [
    ("a:\n  b: 1\n  c: 2\n d: 3\n", (4, 2, "this line is indented 1 space but the lines around it use 2: "
                                       "line keys that belong together up under each other")),
    ("a:\n  b: 1\n    c: 2\n  d: 3\n", (3, 5, "this line is indented 4 spaces but the lines around it use 2 "
                                         "(indented further, it reads as part of the value of 'b' on line 2): "
                                         "line keys that belong together up under each other")),
    ("a:\n b: 1\n  c: 2\n  d: 3\n", (2, 2, "this line is indented 1 space but the lines around it use 2: "
                                       "line keys that belong together up under each other")),
    ("a:\n  - x: 1\n    y: 2\n -z: 3\n", (4, 2, "'-z: 3' needs a space after the '-' to start a list item "
                                            "(write '- z: 3')")),
    ("a:\n  b:1\n  c: 2\n", (2, 3, "'b:1' needs a space after the ':' (write 'b: 1')")),
])
def test_the_line_to_fix_in_plain_words(text: str, expected: tuple[int, int, str]) -> None:
    assert confkit.recover(text).problems[0] == expected


def test_a_single_indentation_slip_is_reported_at_the_slipped_line() -> None:
    """Shift one line of a real rule file by one space either way: the message names that line.

    The parser alone names it for about 80% of such slips (it notices a line later when the
    line above was the one that moved); the few misses left are genuinely ambiguous (a line
    that also reads as the first key of a new block).
    """
    lines = (DEFAULT_PACK / "logins.yaml").read_text(encoding="utf-8").split("\n")
    broken = right = 0
    for i, ln in enumerate(lines):
        s = ln.lstrip(" ")
        if not s or s.startswith("#"):
            continue
        for d in (-1, 1):
            n = len(ln) - len(s) + d
            if n < 0:
                continue
            r = confkit.recover("\n".join([*lines[:i], " " * n + s, *lines[i + 1:]]), unit="rule")
            if r.problems:
                broken += 1
                right += r.problems[0][0] == i + 1
                assert all(1 <= p[0] <= len(lines) for p in r.problems)
    assert broken > 60
    assert right / broken >= 0.97, (right, broken)


def test_a_settings_file_with_syntax_errors_names_each_at_its_line() -> None:
    with pytest.raises(confkit.ConfigFileError) as e:
        confkit.load_yaml("a:\n  b: 1\n   c: 2\nd:\n  e:1\n  f: 2\n", "s.yaml")
    assert [str(i) for i in e.value.issues] == [
        "s.yaml:3:4: this line is indented 3 spaces but the lines around it use 2 (indented further, it reads as "
        "part of the value of 'b' on line 2): line keys that belong together up under each other",
        "s.yaml:5:3: 'e:1' needs a space after the ':' (write 'e: 1')",
    ]
