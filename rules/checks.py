"""Checks across the keys of one rule, and against the installed channels and templates.

Each check reports through ``err(loc, message, key=False)`` and skips locations pydantic already
flagged, so one mistake gives one message.  The theme: a rule file must never say something the
engine will not do (``expires`` without a question, an answer handler without a question,
``inhibit`` on the lowest severity), because a setting that is silently ignored is how ElastAlert
and Keep users were surprised in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ruamel.yaml.comments import CommentedMap

from rules.errors import suggest
from rules.schema import OUTCOMES

USER_CHANNELS = ("push", "sms", "email")  # channels on which the account holder can answer


class Flagged:
    """Locations pydantic already complained about: later checks skip them (one error per mistake)."""

    def __init__(self) -> None:
        self.locs: set[tuple[Any, ...]] = set()

    def add(self, loc: tuple[Any, ...]) -> None:
        self.locs.add(loc)

    def __contains__(self, prefix: object) -> bool:
        p = prefix if isinstance(prefix, tuple) else (prefix,)
        return any(loc[: len(p)] == p or p[: len(loc)] == loc for loc in self.locs if loc)


def _confirm_channels(notify: Mapping[str, Any], severity: Any, confirm: bool, bad: Flagged,
                      err: Callable[..., None]) -> None:
    """``confirm_channels`` must be some of the rule's user channels; a high or critical question
    must leave at least one channel that can confirm it (else every "it was me" is only recorded)."""
    chans = notify.get("channels")
    chosen = notify.get("confirm_channels")
    if not isinstance(chans, list) or ("notify", "channels") in bad or ("notify", "confirm_channels") in bad:
        return
    if chosen is not None and not confirm and ("notify", "confirm") not in bad:
        err(("notify", "confirm_channels"), "has no effect without confirm: true", key=True)
        return
    if isinstance(chosen, list):
        for j, c in enumerate(chosen):
            if c not in chans:
                err(("notify", "confirm_channels", j), f"'{c}' is not one of this rule's channels ({', '.join(chans)})")
            elif c not in USER_CHANNELS:
                err(("notify", "confirm_channels", j), f"the account holder cannot answer on '{c}'")
        if not chosen:
            err(("notify", "confirm_channels"), "is empty: no answer could ever close the alert")
    elif (confirm and severity in ("high", "critical") and any(c in USER_CHANNELS for c in chans)
          and not any(c in ("push", "sms") for c in chans)):
        err(("notify", "confirm"), f"a {severity} alert is confirmed only by push or sms by default, and this "
                                   "rule sends neither: add one, or name the confirming channels in "
                                   "notify.confirm_channels")


def cross_checks(
    item: CommentedMap,
    bad: Flagged,
    channels: Sequence[str],
    templates: set[str] | None,
    err: Callable[..., None],
) -> None:
    """Checks across keys and against the installed channels and templates."""
    notify = item.get("notify")
    confirm = False
    if isinstance(notify, Mapping):
        confirm = notify.get("confirm") is True
        chans = notify.get("channels")
        if isinstance(chans, list) and ("notify", "channels") not in bad:
            for j, c in enumerate(chans):
                if isinstance(c, str) and c not in channels:
                    err(
                        ("notify", "channels", j),
                        f"unknown channel '{c}'"
                        + (suggest(c, channels) or f" (channels: {', '.join(channels)})"),
                    )
            if confirm and ("notify", "confirm") not in bad and not any(c in USER_CHANNELS for c in chans):
                err(
                    ("notify", "confirm"),
                    f"a confirmation needs a channel the account holder can answer on: "
                    f"{', '.join(USER_CHANNELS)}",
                )
        _confirm_channels(notify, item.get("severity"), confirm, bad, err)
        tmpl = notify.get("template")
        if (
            isinstance(tmpl, str)
            and ("notify", "template") not in bad
            and templates is not None
            and tmpl not in templates
        ):
            err(
                ("notify", "template"),
                f"template '{tmpl}' does not exist{suggest(tmpl, templates)} "
                f"(templates live in notifiers/templates/<name>/)",
            )
        if "expires" in notify and not confirm and ("notify", "confirm") not in bad:
            err(
                ("notify", "expires"),
                "has no effect without confirm: true (it is how long the account holder has to answer)",
                key=True,
            )
    for outcome in OUTCOMES[1:]:
        if outcome in item and item[outcome] and not confirm and ("notify", "confirm") not in bad:
            err((outcome,), "needs notify.confirm: true (without a question there is no answer)", key=True)
    confirmed = item.get("on_confirmed")
    if isinstance(confirmed, list) and "on_confirmed" not in bad:
        for j, a in enumerate(confirmed):
            if a == "freeze" or (isinstance(a, Mapping) and ("freeze" in a or a.get("type") == "freeze")):
                err(
                    ("on_confirmed", j),
                    "a freeze here would freeze the account of a holder who just said 'this was me'",
                )
    sev = item.get("severity")
    if "inhibit" not in bad and item.get("inhibit") not in (None, False) and sev == "low":
        err(("inhibit",), "has no effect on a 'low' rule: it mutes alerts of lower severity", key=True)
    seg = item.get("segments")
    others_bad = any(loc[:1] == ("segments",) for loc in bad.locs) and ("segments",) not in bad.locs
    if isinstance(seg, Mapping) and others_bad:  # pydantic compares the ages only when the rest is valid
        lo, hi = seg.get("min_account_age_days"), seg.get("max_account_age_days")
        ages_ok = ("segments", "min_account_age_days") not in bad and (
            "segments",
            "max_account_age_days",
        ) not in bad
        if ages_ok and isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            err(("segments", "min_account_age_days"), f"{lo} is greater than max_account_age_days ({hi})")
