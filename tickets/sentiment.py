"""How the account holder feels, from their own words: a sentiment score and escalation keywords.

Free text from holders -- SMS replies, in-app messages, survey comments -- is scored from -1
(furious) to +1 (delighted) by the ticket classifier's machinery (:mod:`tickets.classify`: char
n-gram TF-IDF + logistic regression, one thread) trained on the labelled sample the project ships
(``tickets/data/sentiment_samples.csv``: negative / neutral / positive in en, zh-CN, zh-TW, ko,
ja).  The score is P(positive) - P(negative).

Escalation keywords (lawyer, police, regulator and their equivalents) are a second signal: a
person who names them is treated as strongly negative whatever the model says, because missing
them costs far more than a needless escalation.

Strongly negative text (score <= ``STRONG`` or a keyword) raises the ticket one priority level
(once per message) and flags it in the console's queue.  :func:`cross_validate` reports the
model's accuracy per locale with translations of one sentence kept in the same fold (the sample
was written as parallel sentences; splitting them would let a fold see its own test sentence in
another script and overstate accuracy).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from alerts.store.models import Ticket
from tickets.classify import LOCALES, Sample, TextClassifier, normalise_locale, read_samples

SAMPLES = Path(__file__).with_name("data") / "sentiment_samples.csv"
LABELS = ("negative", "neutral", "positive")
STRONG = -0.5  # a score at or below this is strongly negative

ESCALATION: dict[str, tuple[str, ...]] = {
    "en": ("lawyer", "attorney", "solicitor", "police", "regulator", "sue ", "sue you", "lawsuit", "court",
           "legal action", "financial authority", "ombudsman", "fbi", "sec "),
    "zh-CN": ("律师", "报警", "警察", "监管", "起诉", "法院", "公安", "举报"),
    "zh-TW": ("律師", "報警", "警察", "金管會", "主管機關", "提告", "法院", "檢舉"),
    "ko": ("변호사", "경찰", "금융감독원", "금감원", "금융당국", "소송", "고소", "신고"),
    "ja": ("弁護士", "警察", "金融庁", "監督当局", "訴え", "訴訟", "被害届", "通報"),
}


@dataclass(frozen=True)
class Sentiment:
    score: float  # -1 .. 1
    keywords: tuple[str, ...]

    @property
    def strongly_negative(self) -> bool:
        return self.score <= STRONG or bool(self.keywords)

    @property
    def flag(self) -> str | None:
        """What the queue shows: ``keyword:lawyer``, ``negative``, or None."""
        if self.keywords:
            return f"keyword:{self.keywords[0].strip()}"
        return "negative" if self.score <= STRONG else None

    def as_dict(self) -> dict[str, Any]:
        return {"score": round(self.score, 3), "keywords": list(self.keywords), "flag": self.flag}


def escalation_keywords(text: str, locale: str | None) -> tuple[str, ...]:
    """Keywords found; every locale's list is tried (people mix languages, and "police" is common)."""
    low = f" {text.lower()} "
    loc = normalise_locale(locale)
    order = [loc] if loc in ESCALATION else []
    order += [x for x in LOCALES if x not in order]
    hits: list[str] = []
    for x in order:
        for w in ESCALATION[x]:
            if w.isascii():
                found = re.search(rf"(?<![a-z]){re.escape(w.strip())}(?![a-z])", low) is not None
            else:
                found = w in low
            if found and w not in hits:
                hits.append(w)
    return tuple(hits)


class SentimentModel:
    """The sentiment classifier: the ticket classifier's pipeline trained on sentiment labels."""

    def __init__(self, clf: TextClassifier) -> None:
        self.clf = clf
        self.classes_ = clf.classes_

    @classmethod
    def fit(cls, samples: Sequence[Sample]) -> SentimentModel:
        return cls(TextClassifier(C=50.0).fit(samples))

    def score(self, text: str, locale: str | None = None) -> Sentiment:
        probs = dict(zip(self.classes_, self.clf.pipeline_.predict_proba([text])[0], strict=True))
        value = float(probs.get("positive", 0.0) - probs.get("negative", 0.0))
        return Sentiment(value, escalation_keywords(text, locale))


def read_sentiment_samples(path: str | Path = SAMPLES) -> list[Sample]:
    return read_samples(path, categories=LABELS)


@lru_cache(maxsize=2)
def default_model(path: str | None = None) -> SentimentModel:
    """Trained from the shipped sample at first use (a fraction of a second, one thread)."""
    return SentimentModel.fit(read_sentiment_samples(path or SAMPLES))


def score_text(text: str, locale: str | None) -> Sentiment:
    return default_model().score(text, locale)


def cross_validate(samples: Sequence[Sample], folds: int = 5, seed: int = 0) -> dict[str, dict[str, float]]:
    """Accuracy of the model alone per locale (and ``all``), and the recall of strongly negative
    texts with the keywords added, over grouped folds (a sentence and its translations together)."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    groups = _parallel_groups(samples)
    y = np.array([s.category for s in samples])
    right: dict[str, list[int]] = {}
    neg_caught: dict[str, list[int]] = {}
    splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(np.zeros(len(y)), y, groups):
        model = SentimentModel.fit([samples[i] for i in train])
        for i in test:
            s = samples[i]
            got = model.score(s.text, s.locale)
            probs = model.clf.pipeline_.predict_proba([s.text])[0]
            pred = model.classes_[int(np.argmax(probs))]
            for key in (s.locale, "all"):
                right.setdefault(key, []).append(int(pred == s.category))
                if s.category == "negative":
                    neg_caught.setdefault(key, []).append(int(got.strongly_negative))
    return {k: {"samples": len(v), "accuracy": sum(v) / len(v),
                "negative_flagged": sum(neg_caught.get(k, [])) / max(1, len(neg_caught.get(k, [])))}
            for k, v in right.items()}


def _parallel_groups(samples: Sequence[Sample]) -> list[int]:
    """The n-th sentence of each (locale, label) block is one group: the sample's parallel layout."""
    seen: dict[tuple[str, str], int] = {}
    out = []
    for s in samples:
        k = (s.locale, s.category)
        out.append(LABELS.index(s.category) * 100_000 + seen.get(k, 0))
        seen[k] = seen.get(k, 0) + 1
    return out


def apply_to_ticket(session: Session, ticket: Ticket, text: str, locale: str | None, *, now: datetime,
                    ref_id: str, source: str) -> Sentiment:
    """Score ``text`` and record it on the ticket: the lowest score, the flag, and -- for strongly
    negative text -- one priority level up (once per ``ref_id``)."""
    from tickets.core import add_event, raise_one_level

    s = score_text(text, locale)
    if ticket.sentiment is None or s.score < ticket.sentiment:
        ticket.sentiment = round(s.score, 3)
    add_event(session, ticket, "sentiment", now=now, ref_id=ref_id, detail={**s.as_dict(), "source": source})
    if s.strongly_negative:
        ticket.sentiment_flag = s.flag
        raise_one_level(session, ticket, now=now, ref_id=ref_id, why=s.flag or "negative")
    return s


def _register() -> None:
    from tickets.core import ON_TEXT

    if apply_to_ticket not in ON_TEXT:
        ON_TEXT.append(apply_to_ticket)


_register()
