"""Page strings for answers that do not close the alert (kept apart from ``i18n.STRINGS`` so the
answer policy's wording travels with it): an "it was me" from a channel that cannot confirm, an
"it was me" after the question expired, and the "not me after all" button shown after either."""

from __future__ import annotations

ANSWER_STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "noted": "Thank you, we have recorded your answer. This alone cannot close a security alert, so our "
                 "team may still check the activity. If it wasn't you, press the button below.",
        "late": "This question has expired, so 'it was me' can no longer be recorded. If the activity wasn't "
                "you, press the button below.",
        "changed_mind": "If this wasn't you after all, you can still freeze your account:",
    },
    "zh-CN": {
        "noted": "谢谢，已记录您的回答。仅凭此回答无法关闭安全提醒，我们的团队可能仍会核查该活动。如果不是您本人操作，请按下方按钮。",
        "late": "此确认已过期，无法再记录“是我本人”。如果该活动不是您本人操作，请按下方按钮。",
        "changed_mind": "如果其实不是您本人操作，仍可立即冻结账户：",
    },
    "zh-TW": {
        "noted": "謝謝，已記錄您的回答。僅憑此回答無法關閉安全提醒，我們的團隊可能仍會查核該活動。如果不是您本人操作，請按下方按鈕。",
        "late": "此確認已過期，無法再記錄「是我本人」。如果該活動不是您本人操作，請按下方按鈕。",
        "changed_mind": "如果其實不是您本人操作，仍可立即凍結帳戶：",
    },
    "ko": {
        "noted": "감사합니다. 답변을 기록했습니다. 이 답변만으로는 보안 알림을 종료할 수 없어 보안팀이 활동을 다시 확인할 수 있습니다. "
                 "본인이 아니라면 아래 버튼을 누르세요.",
        "late": "이 확인 요청은 만료되어 '본인입니다'를 더 이상 기록할 수 없습니다. 본인 활동이 아니라면 아래 버튼을 누르세요.",
        "changed_mind": "본인이 아니었다면 지금도 계정을 동결할 수 있습니다:",
    },
    "ja": {
        "noted": "ありがとうございます。ご回答を記録しました。この回答だけではセキュリティアラートを終了できないため、"
                 "担当チームが確認する場合があります。ご本人でない場合は、下のボタンを押してください。",
        "late": "この確認は有効期限が切れたため、「本人です」は記録できません。ご本人による操作でない場合は、下のボタンを押してください。",
        "changed_mind": "やはりご本人でない場合は、今からでもアカウントを凍結できます：",
    },
}
