"""The configuration toolkit on its own: YAML positions, pydantic errors in words, suggestions."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import confkit


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    port: int = Field(8000, le=65535)
    enabled: bool = True


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    sections: dict[str, Inner] = Field(default_factory=dict)


def _issues(text: str, path: str = "c.yaml") -> list[str]:
    doc = confkit.load_yaml(text, path)
    with pytest.raises(ValidationError) as e:
        Outer.model_validate(confkit.plain(doc))
    return [str(i) for i in confkit.issues(e.value, Outer, doc=doc, path=path)]


def test_every_error_in_words_at_its_node_with_a_suggestion() -> None:
    text = "nmae: x\nsections:\n  a: {port: 70000, enabled: maybe}\n  b:\n    enabeld: true\n"
    assert sorted(_issues(text)) == [
        "c.yaml:1:1: name: the required key 'name' is missing",
        "c.yaml:1:1: nmae: unknown key 'nmae'. Did you mean 'name'?",
        "c.yaml:3:13: sections.a.port: must be <= 65535, got 70000",
        "c.yaml:3:29: sections.a.enabled: expected true or false, got 'maybe'",
        "c.yaml:5:5: sections.b.enabeld: unknown key 'enabeld'. Did you mean 'enabled'?",
    ]


def test_yaml_problems_are_one_line_at_their_position(tmp_path: Path) -> None:
    with pytest.raises(confkit.ConfigFileError) as e:
        confkit.load_yaml("a: 1\n\tb: 2\n", "t.yaml")
    assert str(e.value) == "t.yaml:2:1: a tab character: YAML indentation and spacing must use spaces"
    with pytest.raises(confkit.ConfigFileError, match=r"^t.yaml:1:1: the top level must be a mapping of things$"):
        confkit.load_yaml("- 1\n", "t.yaml", what="a mapping of things")
    with pytest.raises(confkit.ConfigFileError, match=r"missing.yaml:1:1: no such file$"):
        confkit.read_yaml(tmp_path / "missing.yaml")
    assert confkit.load_yaml("", "empty.yaml") == {}


def test_issues_without_a_file_name_their_place_only() -> None:
    with pytest.raises(ValidationError) as e:
        Inner.model_validate({"prot": 1})
    assert [str(i) for i in confkit.issues(e.value, Inner, prefix=("channels", "x"), noun="setting")] == [
        "channels.x.prot: unknown setting 'prot'. Did you mean 'port'?"]
    assert confkit.suggest("Sms", ["sms", "email"]) == ". Did you mean 'sms'?"
    assert confkit.suggest("zzz", ["sms", "email"]) == ""


def test_closest_is_the_one_spelling_guess() -> None:
    assert confkit.closest("smss", ["sms", "email"]) == "sms"
    assert confkit.closest("SMS", ["sms"]) == "sms" and confkit.closest("SMS", ["sms"], loose=False) is None
    assert confkit.closest("account_identifier", ["account_id"]) == "account_id"  # an abbreviation
    assert confkit.closest("zzz", ["sms", "email"]) is None
    assert confkit.suggest("teir", ["tier"], loose=False) == ". Did you mean 'tier'?"
