"""The one message catalogue: every key the code and templates use is translated in every locale.

The keys are extracted exactly as ``scripts/i18n`` extracts them (pybabel's extractors, the
project's ``babel.cfg``), so a key added to a template without a translation fails here.
"""

from __future__ import annotations

import shutil
from configparser import ConfigParser
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from notifiers import catalogue as cat

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"t": None, "_t": (2,), "lookup": (2,), "N_": None}


def extracted_keys() -> set[str]:
    cfg = ConfigParser()
    cfg.read(ROOT / "babel.cfg")
    method_map = [(s.split(":", 1)[1].strip(), s.split(":", 1)[0].strip()) for s in cfg.sections()]
    found = extract_from_dir(ROOT, method_map, keywords=KEYWORDS,
                             directory_filter=lambda d: not Path(d).name.startswith((".", "__pycache__")))
    return {str(msg) for _file, _line, msg, _comments, _ctx in found if isinstance(msg, str)}


def problems(directory: Path, keys: set[str]) -> list[str]:
    en = {m.id: m.string for m in read_po(cat.po_path("en", directory).open("rb")) if m.id}
    out = []
    for loc in cat.LOCALES:
        path = cat.po_path(loc, directory)
        if not path.is_file():
            out.append(f"{loc}: no catalogue at {path}")
            continue
        have = {m.id: m for m in read_po(path.open("rb")) if m.id}
        for key in sorted(keys):
            m = have.get(key)
            if m is None or not m.string:
                out.append(f"{loc}: {key}: missing")
            elif m.fuzzy:
                out.append(f"{loc}: {key}: fuzzy")
            elif key in en and cat.placeholders(str(m.string)) != cat.placeholders(str(en[key])):
                out.append(f"{loc}: {key}: placeholders differ from English")
    return out


def test_every_used_key_is_translated_in_every_locale() -> None:
    keys = extracted_keys()
    assert {"common.greeting", "new_location.sms", "page.title", "events.generic", "label.amount"} <= keys
    assert problems(cat.LOCALE_DIR, keys) == []


def test_every_translated_key_is_used() -> None:
    en = {m.id for m in read_po(cat.po_path("en").open("rb")) if m.id}
    assert en - extracted_keys() == set(), "stale keys: run scripts/i18n"


def test_a_key_missing_in_one_locale_is_named(tmp_path: Path) -> None:
    shutil.copytree(cat.LOCALE_DIR, tmp_path / "locale")
    ko = cat.po_path("ko", tmp_path / "locale")
    text = ko.read_text(encoding="utf-8")
    start = text.index('msgid "page.title"')
    end = text.index("\n\n", start)
    ko.write_text(text[:start] + text[end + 2:], encoding="utf-8")
    assert problems(tmp_path / "locale", {"page.title", "common.greeting"}) == ["ko: page.title: missing"]


def test_web_pages_and_messages_read_the_same_catalogue() -> None:
    from vigil.web.i18n import pick

    lang, strings = pick("zh-Hant-TW")
    assert lang == "zh-TW" and strings["title"] == cat.lookup("zh-TW", "page.title")
    assert pick("fr-FR")[0] == "en"
