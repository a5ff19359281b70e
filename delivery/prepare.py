"""Prepare claimed messages for sending, in one transaction per claim: settle what dead workers
left (``delivery.transmit.takeover``), apply the account's budget and the provider's rate,
coalesce what is held, issue confirmation tokens, render.

Split from :mod:`delivery.deliver`, which sends and records.  Nothing here calls a provider.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from alerts.answer_policy import PREVIOUS
from alerts.contacts import answer_settings
from alerts.lifecycle import OPEN_STATES
from alerts.outbox import OutboxStatus, apply
from alerts.store.models import AccountRow, AlertRow, ConfirmToken, OutboxRow
from alerts.tokens import hash_token, new_token
from delivery.holder import HOLDER_PURPOSES, brand_context, holder_context
from delivery.outbox import (
    Batch,
    Claim,
    Held,
    Job,
    Sends,
    aware,
    context_of,
    preload,
    previous_contact,
    put_back,
    recipient_of,
)
from delivery.policy import PolicySettings, budget_verdict
from delivery.ratelimit import Allowance, Limiter
from delivery.receipts import ANSWERED_SKIP_PURPOSES
from delivery.settings import DeliveryConfig, effective_console
from delivery.transmit import takeover
from notifiers.base import Channel, DeliveryResult, Message, Recipient

log = logging.getLogger("vigil.deliver")
SYSTEM_CHANNELS = ("freeze_hook", "escalate", "webhook")  # not messages to the account holder
INTERNAL_ERROR = DeliveryResult("transient", error="internal error; see the log")
Renderer = Callable[[str, str, str, Mapping[str, Any]], Any]
BUDGET_LOCK_NS = 0x5647_4254  # the advisory locks' first key ("VGBT"): accounts' budget checks


def _lock_key(account_id: str) -> int:
    """A stable 32-bit key per account (a collision only makes two accounts wait for each other)."""
    return int.from_bytes(hashlib.blake2b(account_id.encode(), digest_size=4).digest(), "big", signed=True)


@dataclass
class DeliverReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    fallbacks: int = 0
    held: int = 0  # over the account's budget
    throttled: int = 0  # over the provider's rate, or backed off after a 429
    coalesced: int = 0  # held messages merged into one that went out
    unconfirmed: int = 0  # fallbacks because no delivery receipt came in time
    unknown: int = 0  # handed over, no answer (a provider timeout): never resent in the same attempt
    presumed_sent: int = 0  # a dead worker had handed them over: recorded as sent, not sent again
    lease_lost: int = 0  # taken over by another worker before this one could send them
    outcomes: list[tuple[str, str, str]] = field(default_factory=list)  # (outbox_id, channel, status)
    links: list[tuple[str, str, str]] = field(default_factory=list)  # (alert_id, channel, link) issued

    def add(self, other: DeliverReport) -> None:
        for name, value in other.__dict__.items():
            setattr(self, name, getattr(self, name) + value)

    def summary(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, int)}


class Preparer:
    def __init__(self, settings: DeliveryConfig, channels: Mapping[str, Channel], render: Renderer, *,
                 policy: PolicySettings, limiter: Limiter, worker: str) -> None:
        self.settings = settings
        self.channels = channels
        self.render = render
        self.policy = policy
        self.limiter = limiter
        self.worker = worker

    def prepare(self, s: Session, got: Claim, now: datetime, report: DeliverReport) -> list[Job]:
        order = {oid: i for i, oid in enumerate(got.ids)}
        rows = sorted((r for r in s.scalars(select(OutboxRow).where(OutboxRow.id.in_(got.ids)))
                       if r.lease_owner == got.token), key=lambda r: order[r.id])
        taken = takeover(s, got.takeovers & set(order), now=now, worker=self.worker)
        pinned = preload(s, AlertRow, AlertRow.id, {r.alert_id for r in rows if r.alert_id})
        pinned += preload(s, AccountRow, AccountRow.account_id, {r.account_id for r in rows})
        batch = Batch(rows, *self._recent(s, rows, now, got.token))
        allowance = Allowance(self.limiter, self._need(rows), now, self.policy.rate_batch)
        jobs: list[Job] = []
        try:
            for row in rows:
                if row.id in batch.absorbed:
                    continue
                try:
                    tk = taken.get(row.id)
                    job = None
                    if tk is not None:
                        job = self._presumed(row, tk.worker, tk.since, tk.attempt_id)
                    if job is None:
                        job = self._prepare_one(s, row, batch, allowance, now, report)
                except Exception:  # one broken message (a template error) must not stop the others
                    log.exception("preparing %s", row.id)
                    job = Job(row.id, None, None, INTERNAL_ERROR)
                if job is not None:
                    job.token, job.channel, job.now = got.token, row.channel, now
                    jobs.append(job)
        finally:
            allowance.close()  # tokens taken for messages that were held or skipped go back
        del pinned
        return jobs

    def _need(self, rows: list[OutboxRow]) -> Counter[str]:
        """Messages of the claim per provider: what the claim takes from each bucket at most."""
        need: Counter[str] = Counter()
        for row in rows:
            transport = self.transport(row.channel, (row.payload or {}).get("target"))
            if transport is not None:
                need[transport.name] += 1
        return need

    def _presumed(self, row: OutboxRow, worker: str | None, since: datetime | None, attempt: int | None
                  ) -> Job | None:
        """A dead worker handed this message over: resend only where the receiver drops duplicates."""
        transport = self.transport(row.channel, (row.payload or {}).get("target"))
        if transport is not None and transport.idempotent:
            return None  # the caller prepares it as any other: the resend carries the same delivery id
        why = (f"presumed sent: worker {worker} handed it to the provider at {since} and stopped before "
               "the answer was recorded; not sent again")
        return Job(row.id, transport, None, DeliveryResult("sent", error=why),
                   transport.name if transport else "none", attempt_id=attempt, presumed=True)

    def _recent(self, s: Session, rows: list[OutboxRow], now: datetime, token: str) -> tuple[Sends, Held]:
        """What the budget and coalescing need, in three queries for the whole claim: recent sends
        per (account, channel), the messages other workers are sending to them, and the messages
        held for them.

        Across workers the budget holds because a message another claim has leased (``sending``)
        counts as sent now: it may be on its way.  On PostgreSQL the claims' budget checks are
        also taken one account at a time (a transaction-scoped advisory lock per account), so of
        two workers preparing messages to one account the second sees what the first decided."""
        budgeted = [c for c in {r.channel for r in rows} if c in self.policy.budgets]
        accounts = list({r.account_id for r in rows})
        sent: Sends = defaultdict(list)
        held: Held = defaultdict(list)
        if budgeted:
            self._lock_accounts(s, {r.account_id for r in rows if r.channel in budgeted})
            since = now - timedelta(seconds=max(self.policy.budgets[c].per_seconds for c in budgeted))
            q = select(OutboxRow.id, OutboxRow.account_id, OutboxRow.channel, OutboxRow.sent_at).where(
                OutboxRow.account_id.in_(accounts), OutboxRow.channel.in_(budgeted),
                OutboxRow.sent_at > since)
            seen: set[str] = set()
            for oid, acct, ch, at in s.execute(q):
                sent[(acct, ch)].append((oid, aware(at) or now))
                seen.add(oid)
            mine = {r.id for r in rows}
            leased = select(OutboxRow.id, OutboxRow.account_id, OutboxRow.channel).where(
                OutboxRow.account_id.in_(accounts), OutboxRow.channel.in_(budgeted),
                OutboxRow.status == OutboxStatus.SENDING.value, OutboxRow.lease_owner != token)
            for oid, acct, ch in s.execute(leased):
                if oid not in mine and oid not in seen:  # leased by another claim: on its way, perhaps
                    sent[(acct, ch)].append((oid, now))
        for oid, acct, ch in s.execute(select(OutboxRow.id, OutboxRow.account_id, OutboxRow.channel).where(
                OutboxRow.account_id.in_(accounts), OutboxRow.status == OutboxStatus.HELD.value,
                OutboxRow.purpose.in_(ANSWERED_SKIP_PURPOSES))):
            held[(acct, ch)].append(oid)
        return sent, held

    @staticmethod
    def _lock_accounts(s: Session, accounts: set[str]) -> None:
        """PostgreSQL: one claim at a time checks an account's budget (in key order: no deadlock)."""
        if not accounts or s.get_bind().dialect.name != "postgresql":
            return
        keys = sorted({_lock_key(a) for a in accounts})
        s.execute(text("SELECT pg_advisory_xact_lock(:ns, k) FROM unnest(CAST(:keys AS integer[])) AS k"),
                  {"ns": BUDGET_LOCK_NS, "keys": keys})

    def _prepare_one(self, s: Session, row: OutboxRow, batch: Batch, allowance: Allowance, now: datetime,
                     report: DeliverReport) -> Job | None:
        alert = s.get(AlertRow, row.alert_id) if row.alert_id else None  # preloaded: no query
        recipient = recipient_of(s.get(AccountRow, row.account_id), row.account_id, self.settings)
        recipient = previous_contact(recipient, row)  # a copy for a contact changed lately
        transport = self.transport(row.channel, (row.payload or {}).get("target"))
        if transport is None:
            return Job(row.id, None, None, DeliveryResult("skipped", error=f"channel '{row.channel}' is not "
                                                                             "configured"), "none")
        if not transport.can_reach(recipient):
            skip = f"account has no {transport.needs} for '{row.channel}'"
            return Job(row.id, transport, None, DeliveryResult("skipped", error=skip), transport.name)
        if alert is not None and row.purpose in ANSWERED_SKIP_PURPOSES and alert.status not in OPEN_STATES:
            skip = f"alert already {alert.status}"  # answered by another channel meanwhile
            return Job(row.id, transport, None, DeliveryResult("skipped", error=skip), transport.name)
        over_budget = self._admit(row, transport.name, batch, allowance, now, report)
        if over_budget is None:
            return None
        batch.sent[(row.account_id, row.channel)].append((row.id, now))  # counts for the rest of the claim
        msg = self._compose(s, row, alert, recipient, batch, now, report, over_budget=over_budget)
        return Job(row.id, transport, msg, None, transport.name)

    def _compose(self, s: Session, row: OutboxRow, alert: AlertRow | None, recipient: Recipient,
                 batch: Batch, now: datetime, report: DeliverReport, *, over_budget: bool) -> Message:
        """Coalesce what is held, issue the confirmation token, render."""
        asks = row.purpose in ANSWERED_SKIP_PURPOSES
        coalesced = self._coalesce(s, row, batch, over_budget) if asks else []
        report.coalesced += len(coalesced)
        token = link = None
        if alert is not None and alert.confirm and row.purpose in ANSWERED_SKIP_PURPOSES:
            label = row.channel + (PREVIOUS if (row.payload or {}).get("previous") else "")
            token, link = self._issue_token(s, alert, label, now)
            report.links.append((alert.id, row.channel, link))
        context = context_of(alert, recipient, link, row, len(coalesced))
        context.update(brand_context(self.settings))
        if row.purpose in HOLDER_PURPOSES:  # a survey or an acknowledgement: its reference and link
            context.update(holder_context(s, row, self.settings.web.base_url, now))
        if row.channel in SYSTEM_CHANNELS:
            data = {k: str(v) for k, v in {**(row.payload or {}), **context["data"]}.items()}
            return Message(outbox_id=row.id, channel=row.channel, recipient=recipient, subject=row.template,
                           text="", data=data, alert_id=row.alert_id)
        rendered = self.render(row.template, row.channel, recipient.locale, context)
        data = {str(k): str(v) for k, v in (getattr(rendered, "data", None) or {}).items()}
        data.setdefault("alert_id", row.alert_id or "")
        data.setdefault("kind", row.template)
        if link:
            data["actions"] = "confirm,deny"
            if row.channel == "push" and token:
                data["token"] = token  # the app posts it back to /push/action
        inline: dict[str, tuple[bytes, str]] = {}
        logo = getattr(getattr(self.settings, "branding", None), "email_logo", None)
        if rendered.html and logo is not None:
            from notifiers.branding import LOGO_CID

            inline[LOGO_CID] = logo
        return Message(outbox_id=row.id, channel=row.channel, recipient=recipient, subject=rendered.subject,
                       text=rendered.text, html=rendered.html, data=data, alert_id=row.alert_id, inline=inline)

    def _admit(self, row: OutboxRow, provider: str, batch: Batch, allowance: Allowance, now: datetime,
               report: DeliverReport) -> bool | None:
        """The account's budget, then the provider's rate.  None: the message must wait and was put
        back; else whether it goes out beyond the budget (critical)."""
        budget = None if row.channel in SYSTEM_CHANNELS else self.policy.budgets.get(row.channel)
        over = False
        if budget is not None:
            sent = [at for oid, at in batch.sent[(row.account_id, row.channel)] if oid != row.id]
            verdict = budget_verdict(budget, sent, now=now,
                                     critical=self.policy.is_critical(row.priority, row.purpose),
                                     coalesce=timedelta(seconds=self.policy.coalesce_seconds))
            if not verdict.send:
                put_back(row, "hold", verdict.until or now, verdict.reason)
                report.held += 1
                report.outcomes.append((row.id, row.channel, "held"))
                return None
            over = verdict.over_budget
        wait = allowance.acquire(provider)
        if wait > 0:
            put_back(row, "retry", now + timedelta(seconds=wait), f"provider '{provider}' rate limit")
            report.throttled += 1
            report.outcomes.append((row.id, row.channel, "throttled"))
            return None
        return over

    def _coalesce(self, s: Session, row: OutboxRow, batch: Batch, over_budget: bool) -> list[str]:
        """Merge the account's held messages on this channel into the one about to go out; beyond
        the budget, also the ones claimed in this same claim (they would only be held next)."""
        key = (row.account_id, row.channel)
        got = []
        for hid in batch.held.pop(key, []):
            res = s.execute(update(OutboxRow).where(OutboxRow.id == hid, OutboxRow.status == OutboxStatus.HELD.value)
                            .values(status=apply(OutboxStatus.HELD, "coalesce"), last_error=f"coalesced into {row.id}"))
            if res.rowcount == 1:  # type: ignore[attr-defined]  # another worker may have claimed it
                got.append(hid)
        if over_budget:
            for other in batch.rows:
                same = (other.account_id, other.channel) == key and other.purpose in ANSWERED_SKIP_PURPOSES
                claimed = other.status == OutboxStatus.SENDING
                if same and other is not row and other.id not in batch.absorbed and claimed:
                    put_back(other, "coalesce", other.next_attempt_at, f"coalesced into {row.id}")
                    batch.absorbed.add(other.id)
                    got.append(other.id)
        if got:
            before = (row.payload or {}).get("coalesced", [])
            row.payload = {**(row.payload or {}), "coalesced": [*before, *got]}
        return got

    def transport(self, channel: str, target: Any = None) -> Channel | None:
        if channel == "webhook" and target and f"webhook:{target}" in self.channels:
            return self.channels[f"webhook:{target}"]  # a rule's named webhook (settings: hooks.named)
        ch = self.channels.get(channel)
        if ch is not None:
            return ch
        stand_in = effective_console(self.settings)  # never in production, never beside real channels
        if stand_in.enabled and channel in stand_in.stand_in_for:
            return self.channels.get("console")
        return None

    def _issue_token(self, s: Session, alert: AlertRow, channel: str, now: datetime) -> tuple[str, str]:
        """A link/push token that lives as long as "not me" is heard: the alert's expiry plus the deny
        grace (a confirm is refused after the alert's own expiry, whatever the token says)."""
        token = new_token()
        grace = answer_settings(s)["deny_grace_seconds"]  # the bootstrap puts the answers settings on the sessions
        expires = (aware(alert.expires_at) or now) + timedelta(seconds=grace)
        s.add(ConfirmToken(token_hash=hash_token(token), alert_id=alert.id, account_id=alert.account_id,
                           channel=channel, created_at=now, expires_at=expires))
        return token, f"{self.settings.web.base_url.rstrip('/')}/c/{token}"
