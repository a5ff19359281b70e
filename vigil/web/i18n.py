"""Strings of the confirmation page, per locale (en, zh-CN, zh-TW, ko, ja)."""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Was this you?",
        "intro": "We noticed activity on your account and want to make sure it was you.",
        "when": "Time", "where": "Location", "device": "Device", "ip": "IP address", "amount": "Amount",
        "address": "Destination address", "symbol": "Position", "leverage": "Leverage",
        "margin_ratio": "Margin ratio", "what": "What happened",
        "yes": "Yes, it was me", "no": "No, it wasn't me — freeze my account",
        "anti_phishing": "Your anti-phishing code",
        "guidance": "If this wasn't you, freeze your account now. Then open the app (or type the exchange's "
                    "address yourself) to change your password. We will never ask for your password or 2FA codes.",
        "done_yes": "Thank you. We have noted that this was you. No further action is needed.",
        "done_no": "Your account is frozen. Our security team has been alerted and will contact you. "
                   "Open the app yourself to change your password; never follow links asking for it.",
        "gone": "This link has expired or was already used. If you did not recognise the activity, "
                "open the app and freeze your account from the security settings.",
        "bad": "The form expired. Please open the link from your message again.",
    },
    "zh-CN": {
        "title": "这是您本人的操作吗？",
        "intro": "我们发现您的账户有新的活动，想确认是否为您本人操作。",
        "when": "时间", "where": "地点", "device": "设备", "ip": "IP 地址", "amount": "金额",
        "address": "提现地址", "symbol": "仓位", "leverage": "杠杆", "margin_ratio": "保证金率", "what": "事件",
        "yes": "是，是我本人", "no": "不是我 — 立即冻结账户", "anti_phishing": "您的防钓鱼码",
        "guidance": "如果不是您本人操作，请立即冻结账户，然后自行打开 App 修改密码。我们绝不会索要您的密码或二次验证码。",
        "done_yes": "谢谢，已确认是您本人操作，无需其他操作。",
        "done_no": "您的账户已冻结，安全团队已收到通知并会联系您。请自行打开 App 修改密码，切勿点击索要密码的链接。",
        "gone": "此链接已过期或已使用。如果您不认识该活动，请打开 App 在安全设置中冻结账户。",
        "bad": "表单已过期，请重新打开消息中的链接。",
    },
    "zh-TW": {
        "title": "這是您本人的操作嗎？",
        "intro": "我們發現您的帳戶有新的活動，想確認是否為您本人操作。",
        "when": "時間", "where": "地點", "device": "裝置", "ip": "IP 位址", "amount": "金額",
        "address": "提領地址", "symbol": "倉位", "leverage": "槓桿", "margin_ratio": "保證金率", "what": "事件",
        "yes": "是，是我本人", "no": "不是我 — 立即凍結帳戶", "anti_phishing": "您的防釣魚碼",
        "guidance": "如果不是您本人操作，請立即凍結帳戶，然後自行開啟 App 變更密碼。我們絕不會索取您的密碼或兩步驟驗證碼。",
        "done_yes": "謝謝，已確認是您本人操作，無需其他動作。",
        "done_no": "您的帳戶已凍結，安全團隊已收到通知並會聯絡您。請自行開啟 App 變更密碼，切勿點擊索取密碼的連結。",
        "gone": "此連結已過期或已使用。如果您不認得該活動，請開啟 App 於安全設定中凍結帳戶。",
        "bad": "表單已過期，請重新開啟訊息中的連結。",
    },
    "ko": {
        "title": "본인이 맞으신가요?",
        "intro": "회원님의 계정에서 새로운 활동이 감지되어 본인 여부를 확인하고자 합니다.",
        "when": "시간", "where": "위치", "device": "기기", "ip": "IP 주소", "amount": "금액",
        "address": "출금 주소", "symbol": "포지션", "leverage": "레버리지", "margin_ratio": "증거금 비율",
        "what": "내용", "yes": "네, 본인입니다", "no": "아니요, 본인이 아닙니다 — 계정 동결",
        "anti_phishing": "피싱 방지 코드",
        "guidance": "본인이 아니라면 지금 계정을 동결하세요. 그런 다음 앱을 직접 열어 비밀번호를 변경하세요. "
                    "저희는 비밀번호나 2단계 인증 코드를 절대 요구하지 않습니다.",
        "done_yes": "감사합니다. 본인 활동으로 확인되었습니다. 추가 조치는 필요하지 않습니다.",
        "done_no": "계정이 동결되었습니다. 보안팀이 연락드릴 예정입니다. 앱을 직접 열어 비밀번호를 변경하세요.",
        "gone": "이 링크는 만료되었거나 이미 사용되었습니다. 모르는 활동이라면 앱의 보안 설정에서 계정을 동결하세요.",
        "bad": "양식이 만료되었습니다. 메시지의 링크를 다시 열어 주세요.",
    },
    "ja": {
        "title": "ご本人による操作ですか？",
        "intro": "お客様のアカウントで新しいアクティビティを検知しました。ご本人による操作かご確認ください。",
        "when": "日時", "where": "場所", "device": "デバイス", "ip": "IP アドレス", "amount": "金額",
        "address": "出金先アドレス", "symbol": "ポジション", "leverage": "レバレッジ", "margin_ratio": "証拠金率",
        "what": "内容", "yes": "はい、本人です", "no": "いいえ、本人ではありません — アカウントを凍結",
        "anti_phishing": "フィッシング対策コード",
        "guidance": "ご本人でない場合は、今すぐアカウントを凍結してください。その後、アプリをご自身で開いてパスワードを"
                    "変更してください。パスワードや二段階認証コードをお尋ねすることは決してありません。",
        "done_yes": "ありがとうございます。ご本人による操作として記録しました。これ以上の操作は不要です。",
        "done_no": "アカウントを凍結しました。セキュリティチームからご連絡します。アプリをご自身で開いてパスワードを変更してください。",
        "gone": "このリンクは有効期限切れか、既に使用されています。心当たりのない操作の場合は、アプリのセキュリティ設定からアカウントを凍結してください。",
        "bad": "フォームの有効期限が切れました。メッセージのリンクをもう一度開いてください。",
    },
}
ALIASES = {"zh": "zh-CN", "zh-Hans": "zh-CN", "zh-Hant": "zh-TW", "zh-HK": "zh-TW", "ko-KR": "ko", "ja-JP": "ja"}


def pick(locale: str | None) -> tuple[str, dict[str, str]]:
    loc = (locale or "en").replace("_", "-")
    loc = ALIASES.get(loc, loc)
    if loc not in STRINGS:
        loc = loc.split("-")[0]
        loc = ALIASES.get(loc, loc)
    if loc not in STRINGS:
        loc = "en"
    from vigil.web.answer_strings import ANSWER_STRINGS

    return loc, {**STRINGS[loc], **ANSWER_STRINGS.get(loc, ANSWER_STRINGS["en"])}
