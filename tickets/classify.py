"""Categorise a user's free-text message: keywords per locale plus a small text classifier.

Two signals, because each fails differently.  Keywords are precise and explainable ("hacked",
"被盗", "해킹", "乗っ取") but miss paraphrases; a character n-gram TF-IDF + logistic regression
(scikit-learn) trained on the labelled sample the project ships (``tickets/data/ticket_samples.csv``:
en, zh-CN, zh-TW, ko, ja) generalises across spellings and needs no word segmentation for CJK.
The final score is the model's probability blended with the keyword votes; its maximum is the
confidence recorded on the ticket, and a low confidence sends the ticket to the triage queue.

The model is trained from the sample at first use (well under a second) or by
``vigil tickets train``, which saves it with its format and scikit-learn versions so a stale file
is refused rather than silently misread.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SAMPLES = Path(__file__).with_name("data") / "ticket_samples.csv"
CATEGORIES = ("account_security", "trading", "deposit_withdrawal", "api")
LOCALES = ("en", "zh-CN", "zh-TW", "ko", "ja")
MODEL_FORMAT = 1
KEYWORD_WEIGHT = 0.5  # share of the final score given to keyword votes when any keyword matched

# Lower-case substrings; English ones match on word boundaries, CJK ones anywhere.
KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {
        "account_security": ("hacked", "not me", "wasn't me", "compromised", "phishing", "password", "2fa",
                             "two factor", "authenticator", "freeze my account", "lock my account",
                             "unauthorized", "sim swap", "suspicious login", "new device", "anti-phishing"),
        "trading": ("liquidat", "leverage", "margin", "stop loss", "take profit", "futures", "position",
                    "funding fee", "order filled", "perpetual", "deleverag", "pnl"),
        "deposit_withdrawal": ("withdraw", "deposit", "wrong network", "txid", "memo", "tag", "not credited",
                               "withdrawal limit", "wallet address", "bank transfer"),
        "api": ("api", "api key", "signature", "rate limit", "websocket", "429", "401", "recvwindow",
                "listen key", "listenkey", "bot", "endpoint", "hmac"),
    },
    "zh-CN": {
        "account_security": ("被盗", "盗号", "不是我", "冻结", "密码", "谷歌验证", "双重验证", "钓鱼",
                             "陌生设备", "异地登录", "可疑的登录", "锁定账户"),
        "trading": ("强平", "爆仓", "杠杆", "保证金", "止损", "止盈", "合约", "仓位", "资金费率", "平仓",
                    "限价单"),
        "deposit_withdrawal": ("提现", "提币", "充值", "到账", "转错", "网络", "标签", "交易哈希", "手续费"),
        "api": ("api", "签名", "频率限制", "websocket", "接口", "机器人", "密钥", "listenkey"),
    },
    "zh-TW": {
        "account_security": ("被盜", "盜用", "不是我", "凍結", "密碼", "兩步驗證", "雙重驗證", "釣魚",
                             "陌生裝置", "國外登入", "可疑的登入", "鎖定帳戶"),
        "trading": ("強平", "強制平倉", "爆倉", "槓桿", "保證金", "停損", "停利", "合約", "倉位", "資金費",
                    "平倉"),
        "deposit_withdrawal": ("提領", "提幣", "入金", "入帳", "轉錯", "網路", "標籤", "交易雜湊", "手續費"),
        "api": ("api", "簽章", "頻率限制", "websocket", "介面", "機器人", "金鑰", "listenkey"),
    },
    "ko": {
        "account_security": ("해킹", "제가 아닙니다", "제가 아니", "탈취", "비밀번호", "otp", "2단계 인증",
                             "피싱", "동결", "잠가", "로그인 시도", "유심", "모르는 기기", "새 기기"),
        "trading": ("청산", "레버리지", "증거금", "마진", "손절", "익절", "선물", "포지션", "펀딩비", "체결"),
        "deposit_withdrawal": ("출금", "입금", "네트워크", "txid", "태그", "잔고", "한도", "수수료"),
        "api": ("api", "서명", "호출 제한", "웹소켓", "엔드포인트", "봇", "listenkey"),
    },
    "ja": {
        "account_security": ("乗っ取", "不正アクセス", "私ではありません", "凍結", "パスワード", "二段階認証",
                             "フィッシング", "知らない端末", "ロック", "不審なログイン", "sim"),
        "trading": ("清算", "ロスカット", "レバレッジ", "証拠金", "追証", "損切り", "利確", "先物",
                    "ポジション", "約定", "資金調達率"),
        "deposit_withdrawal": ("出金", "入金", "着金", "送金", "ネットワーク", "タグ", "トランザクションid",
                               "手数料"),
        "api": ("api", "署名", "レート制限", "websocket", "エンドポイント", "ボット", "listenkey"),
    },
}
_ASCII_WORD = re.compile(r"^[a-z0-9' -]+$")


@dataclass(frozen=True)
class Sample:
    text: str
    locale: str
    category: str


@dataclass(frozen=True)
class Classification:
    category: str
    confidence: float
    scores: dict[str, float]
    keywords: tuple[str, ...]  # "category:keyword" hits, for the timeline

    def as_dict(self) -> dict[str, Any]:
        return {"category": self.category, "confidence": round(self.confidence, 4),
                "scores": {k: round(v, 4) for k, v in self.scores.items()}, "keywords": list(self.keywords)}


class ClassifierError(Exception):
    """The sample or a saved model cannot be used; the message says which file and why."""


def normalise_locale(locale: str | None) -> str | None:
    """BCP 47 to one of LOCALES: zh-Hans/zh-SG -> zh-CN, zh-Hant/zh-HK/zh-MO -> zh-TW, ko-KR -> ko."""
    if not locale:
        return None
    loc = locale.replace("_", "-").lower()
    if loc.startswith("zh"):
        return "zh-TW" if any(x in loc for x in ("hant", "-tw", "-hk", "-mo")) else "zh-CN"
    base = loc.split("-")[0]
    return base if base in LOCALES else None


def keyword_hits(text: str, locale: str | None) -> list[tuple[str, str]]:
    """(category, keyword) pairs found; every locale's list is tried when the locale is unknown."""
    low = text.lower()
    loc = normalise_locale(locale)
    tables = [KEYWORDS[loc]] if loc in KEYWORDS else list(KEYWORDS.values())
    if loc is not None and loc != "en":
        tables.append(KEYWORDS["en"])  # "API", "2FA" and the like appear in every language
    hits: list[tuple[str, str]] = []
    for table in tables:
        for cat, words in table.items():
            for w in words:
                found = (re.search(rf"(?<![a-z]){re.escape(w)}", low) is not None) if _ASCII_WORD.match(w) \
                    else w in low
                if found and (cat, w) not in hits:
                    hits.append((cat, w))
    return hits


def read_samples(path: str | Path = SAMPLES, categories: Sequence[str] = CATEGORIES) -> list[Sample]:
    """A labelled sample (``text,locale,category`` -- or another label set, e.g. sentiment's)."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise ClassifierError(f"{p}: sample file not found") from None
    out = []
    for n, r in enumerate(rows, start=2):
        text, loc, cat = (r.get("text") or "").strip(), (r.get("locale") or "").strip(), str(r.get("category") or "")
        if cat not in categories:
            raise ClassifierError(f"{p}:{n}: unknown category {cat!r}; use one of {', '.join(categories)}")
        if not text:
            raise ClassifierError(f"{p}:{n}: empty text")
        out.append(Sample(text, loc, cat))
    if len({s.category for s in out}) < 2:
        raise ClassifierError(f"{p}: the sample needs at least two categories")
    return out


class TextClassifier:
    """Char n-gram TF-IDF + logistic regression, blended with per-locale keywords."""

    def __init__(self, *, ngram_range: tuple[int, int] = (1, 3), C: float = 10.0) -> None:
        self.ngram_range = ngram_range
        self.C = C

    def fit(self, samples: Sequence[Sample]) -> TextClassifier:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.pipeline_ = make_pipeline(
            TfidfVectorizer(analyzer="char_wb", ngram_range=self.ngram_range, sublinear_tf=True),
            LogisticRegression(C=self.C, max_iter=2000),
        )
        with _one_thread():
            self.pipeline_.fit([s.text for s in samples], [s.category for s in samples])
        self.classes_ = tuple(str(c) for c in self.pipeline_.classes_)
        self.sample_hash_ = _hash(samples)
        return self

    def classify(self, text: str, locale: str | None = None) -> Classification:
        probs = self.pipeline_.predict_proba([text])[0]
        scores = {c: float(p) for c, p in zip(self.classes_, probs, strict=True)}
        hits = [(c, w) for c, w in keyword_hits(text, locale) if c in scores]
        if hits:
            votes = {c: sum(1 for hc, _ in hits if hc == c) / len(hits) for c in scores}
            scores = {c: (1 - KEYWORD_WEIGHT) * p + KEYWORD_WEIGHT * votes[c] for c, p in scores.items()}
        best = max(scores, key=scores.__getitem__)
        return Classification(best, scores[best], scores, tuple(f"{c}:{w}" for c, w in hits))

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        import joblib
        import sklearn

        joblib.dump({"format": MODEL_FORMAT, "sklearn": sklearn.__version__, "sample_hash": self.sample_hash_,
                     "ngram_range": self.ngram_range, "C": self.C, "pipeline": self.pipeline_}, Path(path))

    @classmethod
    def load(cls, path: str | Path) -> TextClassifier:
        """Load a model saved by :meth:`save`.  Only load files you wrote: this unpickles."""
        import joblib
        import sklearn

        p = Path(path)
        if not p.is_file():
            raise ClassifierError(f"{p}: model file not found; create it with "
                                  f"'vigil tickets train --out {p}'")
        try:
            blob = joblib.load(p)
        except Exception as e:  # a truncated or foreign file
            raise ClassifierError(f"{p}: not a Vigil ticket classifier ({type(e).__name__})") from None
        if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
            fmt = blob.get("format") if isinstance(blob, dict) else "?"
            raise ClassifierError(f"{p}: model format {fmt} is not {MODEL_FORMAT}; "
                                  "retrain with 'vigil tickets train'")
        if str(blob.get("sklearn", "")).split(".")[:2] != sklearn.__version__.split(".")[:2]:
            raise ClassifierError(f"{p}: trained with scikit-learn {blob.get('sklearn')}, running "
                                  f"{sklearn.__version__}; retrain with 'vigil tickets train'")
        self = cls(ngram_range=tuple(blob["ngram_range"]), C=float(blob["C"]))  # type: ignore[arg-type]
        self.pipeline_ = blob["pipeline"]
        self.classes_ = tuple(str(c) for c in self.pipeline_.classes_)
        self.sample_hash_ = str(blob["sample_hash"])
        return self


def _one_thread() -> Any:
    """BLAS threads make a model this small slower, and thrash on a shared machine (measured:
    fitting the shipped sample took 3.6 s with the default pool and 0.1 s with one thread)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _hash(samples: Iterable[Sample]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.locale}\0{s.category}\0{s.text}\n".encode())
    return h.hexdigest()[:16]


def cross_validate(samples: Sequence[Sample], folds: int = 5, seed: int = 0, min_confidence: float = 0.55
                   ) -> dict[str, float]:
    """Stratified k-fold figures (what ``vigil tickets train`` prints).

    The model is refitted per fold; the keyword lists are fixed (and were written beside the
    sample), so ``accuracy_model`` is the honest generalisation figure and the keyword-blended one
    an upper bound.  ``auto_share`` is the share of held-out texts confident enough to skip triage
    and ``auto_accuracy`` the accuracy among them.
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    y = np.array([s.category for s in samples])
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    right_model = right_all = auto = auto_right = 0
    for train_idx, test_idx in skf.split(np.zeros(len(y)), y):
        clf = TextClassifier().fit([samples[i] for i in train_idx])
        for i in test_idx:
            s = samples[i]
            probs = clf.pipeline_.predict_proba([s.text])[0]
            right_model += clf.classes_[int(np.argmax(probs))] == s.category
            c = clf.classify(s.text, s.locale)
            right_all += c.category == s.category
            if c.confidence >= min_confidence:
                auto += 1
                auto_right += c.category == s.category
    n = len(samples)
    return {"samples": n, "folds": folds, "accuracy_model": right_model / n,
            "accuracy_model_keywords": right_all / n, "auto_share": auto / n,
            "auto_accuracy": auto_right / auto if auto else 0.0}


@lru_cache(maxsize=4)
def default_classifier(model_path: str | None = None) -> TextClassifier:
    """The saved model at ``model_path``, else one trained from the shipped sample at first use."""
    if model_path:
        return TextClassifier.load(model_path)
    return TextClassifier().fit(read_samples())
