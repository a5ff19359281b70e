"""Twilio webhooks: message status callbacks and inbound SMS ("N 4821" answers an alert).

Every request must carry a valid ``X-Twilio-Signature``, computed by Twilio over the **public**
URL it called (``web.twilio.public_url``, default ``web.base_url``: behind a proxy the Host
header is not what Twilio signed) and every form field; it is checked with the SDK's own
``RequestValidator``.  Shared-key signing (``X-Twilio-Webhooks-Signature-Settings``, HMAC-SHA256)
is checked against ``web.twilio.shared_key``.  A request without a valid signature gets 403 and
changes nothing.  Twilio signatures carry no timestamp, so a replayed request is made harmless by
idempotency: receipts by status rank on the message id, answers by the inbound ``MessageSid``.

SMS replies are weak evidence (spoofed sender ids, SIM swaps), so an answer counts only when
    * it comes from the phone number registered on the account (or, for "not me", from the number
      it had before a change within ``answers.previous_contact_days``: that number got a copy),
    * it names the alert's code (``Y 4821`` / ``N 4821``; a bare ``YES`` is Twilio's opt-in
      keyword and never a confirmation), and
    * for ``Y``: the number has not sent too many wrong codes lately (``max_bad_codes`` per
      window).  A correct ``N <code>`` is never locked out -- freezing is the safe direction.
What the answer then does is :mod:`alerts.answer_policy`'s: ``Y`` closes the alert only if the
rule lets SMS confirm and the number was registered before the alert, and only until it
expires; ``N`` freezes until ``answers.deny_grace_seconds`` after the expiry.  STOP / START (and
Twilio's other opt keywords) are mirrored onto the account's SMS opt-out flag; Twilio itself
answers them, so we reply with an empty TwiML.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alerts.answers import answer
from alerts.store.models import AccountRow, AlertEvent, AlertRow
from delivery.deliver import policy_of
from delivery.receipts import Receipt, apply_receipt
from notifiers.console import mask
from vigil.bootstrap import App
from vigil.web.hook_settings import TwilioHookSettings

log = logging.getLogger(__name__)

STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
OPT_OUT = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN = frozenset({"START", "YES", "UNSTOP"})
KEYWORD_ONLY = frozenset({"HELP", "INFO"})
BARE = frozenset({"Y", "N", "NO", "YES"})
_ANSWER = re.compile(r"^(Y|YES|N|NO)[\s:#\-]*(\d{4,8})$")


REPLIES: dict[str, dict[str, str]] = {
    "en": {
        "ticket": "Vigil: we received your message and opened a support request; our team will reply in the app.",
        "denied": "Vigil: your account is now frozen and our security team will contact you. "
                  "Open the app yourself to change your password.",
        "confirmed": "Vigil: thank you, we noted that this was you.",
        "help": "Vigil: to answer, reply Y or N followed by the code from our message, for example N 1234.",
        "unknown": "Vigil: this code is not valid or has expired. If you did not recognise the activity, "
                   "open the app and freeze your account.",
        "locked": "Vigil: too many wrong codes. Open the app to check your account and freeze it if needed.",
        "already": "Vigil: this alert was already answered.",
        "noted": "Vigil: we recorded your answer; our team may still check this activity. "
                 "If it was not you, reply N and the code.",
    },
    "zh-CN": {
        "ticket": "Vigil：已收到您的消息并创建支持工单，团队会在 App 中回复您。",
        "denied": "Vigil：您的账户已冻结，安全团队会联系您。请自行打开 App 修改密码。",
        "confirmed": "Vigil：谢谢，已确认是您本人操作。",
        "help": "Vigil：请回复 Y 或 N 加消息中的验证码，例如 N 1234。",
        "unknown": "Vigil：验证码无效或已过期。如不认识该活动，请打开 App 冻结账户。",
        "locked": "Vigil：错误次数过多。请打开 App 检查账户，可在安全设置中冻结。",
        "already": "Vigil：此提醒已处理。",
        "noted": "Vigil：已记录您的回答，团队可能仍会核查该活动。如不是您本人，请回复 N 加验证码。",
    },
    "zh-TW": {
        "ticket": "Vigil：已收到您的訊息並建立支援單，團隊會在 App 中回覆您。",
        "denied": "Vigil：您的帳戶已凍結，安全團隊會聯絡您。請自行開啟 App 變更密碼。",
        "confirmed": "Vigil：謝謝，已確認是您本人操作。",
        "help": "Vigil：請回覆 Y 或 N 加訊息中的驗證碼，例如 N 1234。",
        "unknown": "Vigil：驗證碼無效或已過期。如不認得此活動，請開啟 App 凍結帳戶。",
        "locked": "Vigil：錯誤次數過多。請開啟 App 檢查帳戶，可在安全設定中凍結。",
        "already": "Vigil：此提醒已處理。",
        "noted": "Vigil：已記錄您的回答，團隊可能仍會查核該活動。如不是您本人，請回覆 N 加驗證碼。",
    },
    "ko": {
        "ticket": "Vigil: 메시지를 받아 지원 요청을 접수했습니다. 앱에서 답변드리겠습니다.",
        "denied": "Vigil: 계정이 동결되었으며 보안팀이 연락드립니다. 앱을 직접 열어 비밀번호를 변경하세요.",
        "confirmed": "Vigil: 감사합니다. 본인 활동으로 확인되었습니다.",
        "help": "Vigil: Y 또는 N 뒤에 메시지의 코드를 붙여 답장하세요. 예: N 1234",
        "unknown": "Vigil: 코드가 유효하지 않거나 만료되었습니다. 모르는 활동이면 앱에서 계정을 동결하세요.",
        "locked": "Vigil: 잘못된 코드가 너무 많습니다. 앱에서 계정을 확인하고 동결하세요.",
        "already": "Vigil: 이미 응답한 알림입니다.",
        "noted": "Vigil: 답변을 기록했습니다. 보안팀이 활동을 다시 확인할 수 있습니다. "
                 "본인이 아니라면 N과 코드를 답장하세요.",
    },
    "ja": {
        "ticket": "Vigil：メッセージを受け付け、サポート依頼を作成しました。アプリでご回答します。",
        "denied": "Vigil：アカウントを凍結しました。担当者から連絡します。"
                  "アプリを開いてパスワードを変更してください。",
        "confirmed": "Vigil：ありがとうございます。ご本人の操作と確認しました。",
        "help": "Vigil：Y または N の後にメッセージのコードを付けて返信してください。例：N 1234",
        "unknown": "Vigil：コードが無効か期限切れです。"
                   "心当たりがなければアプリでアカウントを凍結してください。",
        "locked": "Vigil：誤ったコードが多すぎます。アプリでアカウントを確認し凍結してください。",
        "already": "Vigil：このアラートには回答済みです。",
        "noted": "Vigil：ご回答を記録しました。担当チームが確認する場合があります。"
                 "ご本人でない場合は N とコードを返信してください。",
    },
}


def reply_text(key: str, locale: str | None) -> str:
    loc = (locale or "en").replace("_", "-")
    if loc not in REPLIES:
        low = loc.lower()
        loc = ("zh-TW" if low.startswith(("zh-tw", "zh-hk", "zh-hant")) else "zh-CN" if low.startswith("zh")
               else low.split("-")[0])
    return REPLIES.get(loc, REPLIES["en"])[key]


def hook_settings(app: App) -> TwilioHookSettings:
    cfg = getattr(app.settings.web, "twilio", None)
    return cfg if isinstance(cfg, TwilioHookSettings) else TwilioHookSettings()


def _sms_auth_token(app: App) -> str | None:
    sms: Any = getattr(app.settings.channels, "sms", None)
    tok = sms.get("auth_token") if isinstance(sms, Mapping) else getattr(sms, "auth_token", None)
    if isinstance(tok, SecretStr):
        return tok.get_secret_value() or None
    return str(tok) if tok else None


def signature_ok(request: Request, form: Any, cfg: TwilioHookSettings, fallback_token: str | None,
                 base_url: str) -> bool:
    """Twilio's own validator over the public URL and all form fields."""
    from twilio.request_validator import RequestValidator, get_signature_algorithm

    sig = request.headers.get("X-Twilio-Signature")
    if not sig:
        return False
    settings_header = request.headers.get("X-Twilio-Webhooks-Signature-Settings")
    if settings_header:
        secret = cfg.shared_key.get_secret_value() if cfg.shared_key else None
    else:
        secret = cfg.auth_token.get_secret_value() if cfg.auth_token else fallback_token
    if not secret:
        log.error("a Twilio webhook arrived but no secret is configured (web.twilio.auth_token, "
                  "channels.sms.auth_token or web.twilio.shared_key): refused")
        return False
    url = (cfg.public_url or base_url).rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    algorithm = get_signature_algorithm(settings_header)
    ok: bool = RequestValidator(secret).validate(url, form, sig, algorithm=algorithm)
    return ok


def twiml(text: str | None = None) -> Response:
    from twilio.twiml.messaging_response import MessagingResponse

    resp = MessagingResponse()
    if text:
        resp.message(text)
    return Response(str(resp), media_type="application/xml")


def router(app: App, cfg: TwilioHookSettings | None = None) -> APIRouter:
    """The two webhooks, bound to ``app`` (mount with ``api.include_router(router(app))``)."""
    api = APIRouter()
    settings = cfg or hook_settings(app)
    forbidden = PlainTextResponse("invalid or missing X-Twilio-Signature", status_code=403)

    async def verified_form(request: Request) -> Any | None:
        form = await request.form()
        ok = signature_ok(request, form, settings, _sms_auth_token(app), app.settings.web.base_url)
        return form if ok else None

    @api.post(STATUS_PATH)
    async def status_callback(request: Request) -> Response:
        form = await verified_form(request)
        if form is None:
            return forbidden
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        if not isinstance(sid, str) or not isinstance(status, str) or not sid or not status:
            return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
        code, err = form.get("ErrorCode"), form.get("ErrorMessage")
        receipt = Receipt(sid, status, code if isinstance(code, str) and code else None,
                          err if isinstance(err, str) and err else None)
        retry = timedelta(seconds=policy_of(app.settings).receipt_retry_seconds)

        def apply() -> bool:
            with app.sessions.begin() as s:
                out = apply_receipt(s, receipt, now=app.clock(), retry_delay=retry, transport="twilio")
                return out.outbox_id is not None

        # a receipt can overtake the worker recording the message id it answers: look again briefly
        deadline = time.monotonic() + settings.receipt_wait_seconds
        while not await run_in_threadpool(apply) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        return Response(status_code=204)

    @api.post(INBOUND_PATH)
    async def inbound(request: Request) -> Response:
        form = await verified_form(request)
        if form is None:
            return forbidden
        fields = {k: v for k, v in form.items() if isinstance(v, str)}

        def handle() -> str | None:
            with app.sessions.begin() as s:
                return handle_inbound(s, fields, now=app.clock(), cfg=settings,
                                      default_locale=app.settings.default_locale, brand=app.settings.branding.name)

        return twiml(await run_in_threadpool(handle))

    return api


def normalise_body(body: str) -> str:
    """Full-width digits and letters (CJK keyboards) to ASCII, case and spacing folded."""
    return " ".join(unicodedata.normalize("NFKC", body).upper().split())


def handle_inbound(s: Session, fields: Mapping[str, str], *, now: datetime, cfg: TwilioHookSettings,
                   default_locale: str = "en", brand: str = "Vigil") -> str | None:
    """One inbound SMS (signature already checked): the reply text, or None for an empty TwiML."""
    sender = fields.get("From", "").strip()
    sid = fields.get("MessageSid") or fields.get("SmsMessageSid") or fields.get("SmsSid") or ""
    body = normalise_body(fields.get("Body", ""))
    accounts = list(s.scalars(select(AccountRow).where(AccountRow.phone == sender))) if sender else []
    locale = next((a.locale for a in accounts if a.locale), default_locale)
    if body in OPT_OUT or body in OPT_IN:
        for a in accounts:  # Twilio enforces the opt-out itself; mirror it so no SMS is even tried
            a.sms_opt_out = body in OPT_OUT
            a.updated_at = now
        return reply_text("help", locale) if body == "YES" and accounts else None
    if body in KEYWORD_ONLY:
        return None  # Twilio answers HELP/INFO
    if accounts:  # "5 4821 thanks": the answer to a satisfaction survey sent by SMS
        survey_reply = _survey_answer(s, accounts, fields.get("Body", ""), now, locale)
        if survey_reply is not None:
            return survey_reply
    m = _ANSWER.match(body)
    if m is None:
        if accounts and body not in BARE and body[:1] not in ("Y", "N") and len(body) >= 8:
            # free text from a registered number ("I did not do this withdrawal"): a classified ticket,
            # acknowledged with its reference
            from tickets.core import open_from_text
            from tickets.surveys import ticket_ref
            from vigil.web.holder import ack_text

            got = open_from_text(s, accounts[0].account_id, fields.get("Body", ""), accounts[0].locale or locale,
                                 now, channel="sms", ref_id=sid or None)
            return ack_text(locale, ticket_ref(got.ticket.id), brand)
        return reply_text("help", locale) if accounts and (body in BARE or body[:1] in ("Y", "N")) else None
    action = "deny" if m.group(1) in ("N", "NO") else "confirm"
    code = m.group(2)
    # the number the account had before a recent change got a copy of the alert: it may say "not me"
    previous = _previous_holders(s, sender, now) if sender else []
    if not accounts and not previous:
        return reply_text("unknown", locale)
    if not accounts:
        holder = s.get(AccountRow, previous[0])
        locale = (holder.locale if holder else None) or locale
    owners = [a.account_id for a in accounts] + previous
    alerts = list(s.scalars(
        select(AlertRow).where(AlertRow.account_id.in_(owners), AlertRow.sms_code.is_not(None))
        .order_by(AlertRow.created_at.desc(), AlertRow.id)
    ))
    if not alerts:
        return reply_text("unknown", locale)
    ids = [a.id for a in alerts]
    actor = f"twilio:{sid}"
    if sid and s.scalar(select(func.count()).select_from(AlertEvent)
                        .where(AlertEvent.alert_id.in_(ids), AlertEvent.actor == actor)):
        log.info("inbound SMS %s replayed: ignored", sid)
        return None
    since = now - timedelta(seconds=cfg.bad_code_window_seconds)
    bad = s.scalar(select(func.count()).select_from(AlertEvent).where(
        AlertEvent.alert_id.in_(ids), AlertEvent.event == "sms_bad_code", AlertEvent.at > since)) or 0
    alert = next((a for a in alerts if a.sms_code == code), None)
    # after too many wrong codes only "Y" is locked: a correct "N <code>" still freezes (the safe way)
    if bad >= cfg.max_bad_codes and (action == "confirm" or alert is None):
        s.add(AlertEvent(alert_id=alerts[0].id, at=now, event="sms_refused", actor=actor,
                         detail={"reason": "too many wrong codes", "action": action}))
        return reply_text("locked", locale)
    if alert is None:
        s.add(AlertEvent(alert_id=alerts[0].id, at=now, event="sms_bad_code", actor=actor,
                         detail={"action": action}))
        return reply_text("unknown", locale)
    from_previous = alert.account_id not in {a.account_id for a in accounts}
    s.add(AlertEvent(alert_id=alert.id, at=now, event="sms_reply", actor=actor,
                     detail={"action": action, "previous_number": from_previous}))
    res = answer(s, alert.id, action, channel="sms:previous" if from_previous else "sms", now=now,
                 actor=f"sms:{mask(sender)}")
    if action == "deny":
        return reply_text("denied", locale) if res.status == "denied" else reply_text("unknown", locale)
    return reply_text({"confirm": "confirmed", "unverified": "noted", "repeat": "already"}.get(res.outcome, "unknown"),
                      locale)


def _previous_holders(s: Session, sender: str, now: datetime) -> list[str]:
    """Accounts whose phone number was ``sender`` until a change within the window."""
    from alerts.contacts import window
    from alerts.store.models import ContactChange

    return sorted(set(s.scalars(select(ContactChange.account_id).where(
        ContactChange.kind == "phone", ContactChange.previous == sender,
        ContactChange.changed_at > now - window(s)))))


def _survey_answer(s: Session, accounts: list[AccountRow], body: str, now: datetime, locale: str) -> str | None:
    from tickets.surveys import SurveyError, sms_answer, ticket_ref
    from vigil.web.holder import strings

    try:
        got = sms_answer(s, [a.account_id for a in accounts], body, now=now)
    except SurveyError:
        return strings(locale)[1]["gone"]
    if got is None:
        return None
    return strings(locale, ref=ticket_ref(got.survey.ticket_id))[1]["thanks_reopened" if got.reopened else "thanks_sms"]
