"""Segment counting and GSM-7 folding (notifiers.sms_segments)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from notifiers import sms_segments as s


def test_gsm7_single_and_concatenated_limits() -> None:
    assert s.analyse("").segments == 0
    assert s.analyse("a" * 160) == s.SmsInfo("GSM-7", 160, 1)
    assert s.analyse("a" * 161).segments == 2
    assert s.analyse("a" * 306).segments == 2
    assert s.analyse("a" * 307).segments == 3


def test_gsm7_extension_characters_cost_two_septets() -> None:
    assert s.analyse("€" * 80) == s.SmsInfo("GSM-7", 160, 1)
    assert s.analyse("€" * 81).segments == 2
    assert s.encoding("{[~]}|^\\") == "GSM-7"


def test_an_escape_pair_is_never_split_across_parts() -> None:
    text = "a" * 152 + "€" + "a" * 152  # 306 septets: 2 parts by the formula, 3 in truth
    assert s.estimate(306, "GSM-7") == 2
    assert s.analyse(text).segments == 3


def test_ucs2_limits_and_surrogate_pairs() -> None:
    assert s.analyse("中" * 70) == s.SmsInfo("UCS-2", 70, 1)
    assert s.analyse("中" * 71).segments == 2
    assert s.analyse("中" * 134).segments == 2
    assert s.analyse("中" * 135).segments == 3
    assert s.analyse("😀" * 35) == s.SmsInfo("UCS-2", 70, 1)
    # 66 + 34*2 = 134 units: 2 parts by the formula, but a pair is not split -> 3
    assert s.analyse("a" * 66 + "😀" * 34).segments == 3


def test_one_foreign_letter_switches_the_whole_message_to_ucs2() -> None:
    latin = "New sign-in from Sao Paulo. " * 3
    assert s.encoding(latin) == "GSM-7"
    assert s.encoding(latin.replace("Sao", "São")) == "UCS-2"


def test_fold_to_gsm_keeps_gsm_letters_and_strips_the_rest() -> None:
    assert s.fold_to_gsm("São Paulo") == "Sao Paulo"
    assert (
        s.fold_to_gsm("Zürich, Málaga, Kraków, Łódź") == "Zürich, Malaga, Krakow, Lodz"
    )  # á is not GSM-7, à is
    assert s.fold_to_gsm("Pixel 8 – “Chrome”…") == 'Pixel 8 - "Chrome"...'
    assert s.fold_to_gsm("東京") == "??"


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=200))
def test_folded_text_is_always_gsm7(text: str) -> None:
    assert s.is_gsm7(s.fold_to_gsm(text))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=sorted(s.GSM7_BASIC | s.GSM7_EXTENSION), max_size=200))
def test_folding_gsm_text_changes_nothing(text: str) -> None:
    assert s.fold_to_gsm(text) == text


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=400))
def test_segments_agree_with_the_limits(text: str) -> None:
    info = s.analyse(text)
    assert (info.segments <= 1) == (info.units <= s.SINGLE[info.encoding])
    assert info.segments >= s.estimate(info.units, info.encoding)
    assert s.fits(text, info.segments)
