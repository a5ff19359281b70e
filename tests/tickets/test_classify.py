"""The ticket text classifier: keywords per locale, the model trained on the shipped sample."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tickets.classify import (
    CATEGORIES,
    LOCALES,
    ClassifierError,
    TextClassifier,
    default_classifier,
    keyword_hits,
    normalise_locale,
    read_samples,
)

# Messages written for this test, not in the sample: the model must generalise to them.
HELD_OUT = [
    ("en", "account_security", "Somebody accessed my account and changed my email, I never did that"),
    ("en", "deposit_withdrawal", "my BTC deposit from yesterday still isn't in my balance"),
    ("en", "trading", "why did my short get liquidated at that price"),
    ("en", "api", "the api keeps saying invalid signature for every request"),
    ("zh-CN", "account_security", "我的账号被人登录了，密码也被改了"),
    ("zh-CN", "deposit_withdrawal", "提现申请三个小时了还没到账"),
    ("zh-TW", "trading", "我的合約倉位突然被強制平倉"),
    ("zh-TW", "api", "API金鑰呼叫時一直出現簽章錯誤"),
    ("ko", "account_security", "누가 제 계정에 로그인해서 비밀번호를 바꿨어요"),
    ("ko", "deposit_withdrawal", "어제 보낸 출금이 아직 도착하지 않았어요"),
    ("ja", "trading", "ポジションが勝手にロスカットされました"),
    ("ja", "api", "APIの署名エラーが直りません"),
]


@pytest.fixture(scope="module")
def clf() -> TextClassifier:
    return TextClassifier().fit(read_samples())


def test_the_shipped_sample_covers_every_locale_and_category() -> None:
    samples = read_samples()
    counts = Counter((s.locale, s.category) for s in samples)
    assert {(loc, cat) for loc in LOCALES for cat in CATEGORIES} == set(counts)
    assert min(counts.values()) >= 10


@pytest.mark.parametrize(("locale", "category", "text"), HELD_OUT)
def test_held_out_messages_are_categorised(clf: TextClassifier, locale: str, category: str, text: str
                                           ) -> None:
    c = clf.classify(text, locale)
    assert c.category == category, c.as_dict()
    assert abs(sum(c.scores.values()) - 1.0) < 1e-6


def test_keywords_raise_confidence_and_are_explained(clf: TextClassifier) -> None:
    text = "계정이 해킹당했어요"
    c = clf.classify(text, "ko")
    model_only = float(max(clf.pipeline_.predict_proba([text])[0]))
    assert c.category == "account_security" and "account_security:해킹" in c.keywords
    assert c.confidence > model_only
    assert keyword_hits("I lost my 2FA device", "en") == [("account_security", "2fa")]
    assert keyword_hits("rapid withdrawals", None)[0] == ("deposit_withdrawal", "withdraw")
    assert ("api", "api") in keyword_hits("API 키 오류", "ko")  # English terms count in every language


def test_off_topic_text_has_low_confidence(clf: TextClassifier) -> None:
    c = clf.classify("hello, what time does your office open tomorrow?", "en")
    assert c.confidence < 0.55 and not c.keywords


def test_locales_are_normalised() -> None:
    assert [normalise_locale(x) for x in ("zh-Hans-CN", "zh_TW", "zh-HK", "ko-KR", "ja", "fr-FR", None)] == [
        "zh-CN", "zh-TW", "zh-TW", "ko", "ja", None, None]


def test_a_saved_model_loads_and_stale_files_are_refused(clf: TextClassifier, tmp_path: Path) -> None:
    import joblib

    path = tmp_path / "model.joblib"
    clf.save(path)
    again = TextClassifier.load(path)
    text = "withdrawal stuck for hours"
    assert again.classify(text, "en") == clf.classify(text, "en")
    assert default_classifier(str(path)).classes_ == clf.classes_
    joblib.dump({"format": 99}, path)
    with pytest.raises(ClassifierError, match="model format 99 is not 1; retrain"):
        TextClassifier.load(path)
    path.write_bytes(b"not a model")
    with pytest.raises(ClassifierError, match="not a Vigil ticket classifier"):
        TextClassifier.load(path)
    with pytest.raises(ClassifierError, match="model file not found"):
        TextClassifier.load(tmp_path / "none.joblib")


def test_a_bad_sample_file_is_named(tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text("locale,category,text\nen,account_security,hacked\nen,billing,invoice\n", encoding="utf-8")
    with pytest.raises(ClassifierError, match=r"s.csv:3: unknown category 'billing'"):
        read_samples(f)
