"""The codebook written with every export: each code the CSV files use, with English and Chinese
labels (symptoms with their triage level), so a statistician never has to guess a value.

The codes come from the domain enums and the configuration, so a new code cannot be exported
without appearing here (tests/coordinator/test_coord_export_integrity.py checks the files).
"""

from __future__ import annotations

from bot.domain.status import CourseStatus, HelperStatus, PatientStatus
from bot.config import Settings
from bot.domain.dose import AnswerSource, DoseState, PauseOrigin
from bot.domain.tokens import InvitationStatus
from bot.domain.alerts import AlertKind, LEVEL_BY_KIND
from bot.services.doses import MISSED_REASONS

_DOSE_STATES = {
    DoseState.SCHEDULED: ("not over yet", "尚未结束", "the day has not closed"),
    DoseState.TAKEN: ("taken", "已服药", "the patient said the dose was taken"),
    DoseState.MISSED: ("not taken", "未服药", "the patient said the dose was skipped"),
    DoseState.NOT_REPORTED: ("no answer", "未回复", "the day closed without an answer; counts in adherence"),
    DoseState.HELD: ("held by the study team", "研究团队暂停用药", "closed during a team hold; never counted"),
    DoseState.BEFORE_REGISTRATION: ("before registration", "登记前", "over before the course was registered; "
                                    "not reminded, not counted (a catch-up answer may follow)"),
    DoseState.CANCELLED: ("cancelled", "已取消", "voided with its course or by a correction; not a dose day"),
}
_SOURCES = {
    AnswerSource.BUTTON: ("reminder button", "提醒按钮", "answered on the day's own reminder"),
    AnswerSource.LATE_QUESTION: ("next-morning question", "次日早上的询问", "answered late, after the day closed"),
    AnswerSource.CATCH_UP: ("catch-up question", "补充询问", "answered about a day over before registration"),
    AnswerSource.COORDINATOR: ("coordinator correction", "研究团队更正", "recorded by the study team"),
}
_MISSED = {"forgot": ("forgot", "忘记了"), "side_effects": ("side effects", "副作用"), "ran_out": ("ran out", "药吃完了"),
           "doctor": ("doctor said stop", "医生让停药"), "other": ("other", "其他")}
_ALERTS = {
    AlertKind.EMERGENCY_SYMPTOM: ("emergency symptom report", "紧急症状报告"),
    AlertKind.SAME_DAY_SYMPTOM: ("symptom report: call today", "症状报告：当天联系"),
    AlertKind.CONSECUTIVE_MISSED: ("consecutive doses missed or not reported (one per run)", "连续漏服或未回复（每段一次）"),
    AlertKind.UNREACHABLE: ("patient unreachable", "无法联系患者"),
    AlertKind.PATIENT_COURSE_START: ("patient reported chemotherapy finished", "患者报告化疗结束"),
    AlertKind.PATIENT_PAUSED: ("patient paused reminders", "患者暂停提醒"),
    AlertKind.PATIENT_RESUMED: ("reminders resumed", "提醒已恢复"),
    AlertKind.NEW_ENROLMENT: ("new enrolment", "新入组"),
    AlertKind.PATIENT_MESSAGE: ("message from a patient (level raised by the keyword safety net)", "患者留言（关键词可提高级别）"),
    AlertKind.PATIENT_COURSE_CONFLICT: ("patient's chemotherapy end disagrees with the registered course",
                                "患者报告的化疗结束日期与已登记疗程不符"),
    AlertKind.CONMED_REPORTED: ("possible prohibited concomitant medication (the patient's pick in the check)",
                        "可能的禁用合并用药（患者在询问中选择）"),
    AlertKind.TABLET_COUNT_DIFFERENCE: ("tablets left differ from the dose record beyond the tolerance",
                                "剩余药片数与服药记录不符（超出允许范围）"),
    AlertKind.VISIT_CHANGE_REQUEST: ("patient asks to change a visit", "患者要求更改就诊时间"),
    AlertKind.MISSED_REASON: ("dose not taken: doctor said stop, side effects or ran out", "未服药：医生让停药、副作用或药吃完了"),
}
_SIMPLE = [
    ("patients.status", PatientStatus.ACTIVE, "active", "进行中", ""),
    ("patients.status", PatientStatus.PAUSED, "paused (see pause_origin)", "已暂停（见 pause_origin）", ""),
    ("patients.status", PatientStatus.WITHDRAWN, "withdrawn", "已退出", ""),
    ("courses.status", CourseStatus.ACTIVE, "active", "有效", ""),
    ("courses.status", CourseStatus.CANCELLED, "cancelled", "已取消", ""),
    ("courses.source", "coordinator", "registered by a coordinator", "研究团队登记", ""),
    ("courses.source", "cli", "registered by an operator", "运维登记", ""),
    ("courses.source", "patient", "reported by the patient", "患者报告", ""),
    ("dose_days.out_of_window", "true", "kept outside the corrected course", "保留在更正后疗程之外", ""),
    ("dose_events.kind", "answer", "patient answer", "患者回复", ""),
    ("dose_events.kind", "close", "day closed", "当天结束", ""),
    ("dose_events.kind", "snooze", "remind me later", "稍后提醒", ""),
    ("dose_events.kind", "correction", "coordinator correction", "研究团队更正", ""),
    ("dose_events.kind", "reanchor", "moved or left the window by a course correction", "疗程更正调整", ""),
    ("dose_events.kind", "void", "voided (course cancelled or outside a correction)", "作废", ""),
    ("dose_events.kind", "carried", "answered day of a cancelled course joined the new course", "转入新疗程", ""),
    ("symptom_reports.level", "emergency", "emergency", "紧急", ""),
    ("symptom_reports.level", "same_day", "same day", "当天处理", ""),
    ("symptom_reports.level", "log", "logged", "记录", ""),
    ("alerts.level", "emergency", "emergency", "紧急", ""),
    ("alerts.level", "same_day", "same day", "当天处理", ""),
    ("alerts.level", "info", "information", "通知", ""),
    ("dose_events.kind", "undo", "the patient took back 'not today' while the day was open", "患者撤回“今天不服”", ""),
    ("patient_messages.direction", "from_patient", "sent by the patient", "患者发来", ""),
    ("patient_messages.direction", "to_patient", "answer from the study team", "研究团队回复", ""),
    ("patient_messages.kind", "text", "text", "文字", ""),
    ("patient_messages.kind", "voice", "voice message", "语音", ""),
    ("patient_messages.kind", "audio", "audio", "音频", ""),
    ("patient_messages.kind", "photo", "photo", "照片", ""),
    ("patient_messages.kind", "video", "video", "视频", ""),
    ("patient_messages.kind", "document", "file", "文件", ""),
    ("patient_messages.kind", "sticker", "sticker", "表情贴图", ""),
    ("patient_messages.kind", "animation", "animation", "动图", ""),
    ("patient_messages.kind", "location", "location", "位置", ""),
    ("patient_messages.kind", "contact", "contact card", "名片", ""),
    ("patient_messages.level", "info", "no danger words", "无危险用语", ""),
    ("patient_messages.level", "same_day", "same-day words", "当天处理用语", ""),
    ("patient_messages.level", "emergency", "emergency words", "紧急用语", ""),
    ("concomitant_medications.check_point", "start", "asked with the course plan", "随疗程计划询问", ""),
    ("concomitant_medications.check_point", "mid", "asked mid-course", "疗程中途询问", ""),
    ("concomitant_medications.answer", "yes", "started a new medicine", "开始了新的药物", ""),
    ("concomitant_medications.answer", "no", "nothing new", "没有新的药物", ""),
    ("accountability.source", "button", "tapped a number", "点按数字", ""),
    ("accountability.source", "typed", "typed a number", "输入数字", ""),
    ("visits.status", "scheduled", "scheduled (not yet confirmed as attended)", "已安排（尚未确认到诊）", ""),
    ("visits.status", "cancelled", "cancelled by the study team", "研究团队已取消", ""),
    ("visits.status", "attended", "confirmed as attended by the study team", "研究团队确认已到诊", ""),
    ("visits.patient_answer", "coming", "I'll be there", "会按时去", ""),
    ("visits.patient_answer", "change", "I need to change it", "需要改时间", ""),
    ("invitations.purpose", "enrol", "enrolment", "入组", ""),
    ("invitations.purpose", "rebind", "new phone", "更换手机", ""),
    ("invitations.purpose", "helper", "family helper invitation", "家属协助者邀请", ""),
    ("helpers.status", HelperStatus.ACTIVE, "helping (the patient consents)", "协助中（患者已同意）", ""),
    ("helpers.status", HelperStatus.REMOVED, "no longer a helper", "已不再是协助者", ""),
    ("helpers.removal_reason", "removed", "removed by the patient or the study team", "被患者或研究团队移除", ""),
    ("helpers.removal_reason", "consent_withdrawn", "the patient withdrew consent to helpers", "患者撤回了对协助者的同意", ""),
    ("symptom_reports.reported_by", "patient", "reported by the patient", "患者本人报告", ""),
    ("symptom_reports.reported_by", "H-<site>-<n>", "reported by this family helper on the patient's behalf",
     "由该家属协助者代为报告", ""),
    ("audit_log.actor_kind", "helper", "family helper (helper id)", "家属协助者（协助者编号）", ""),
    ("audit_log.actor_kind", "patient", "patient (subject id)", "患者（受试者编号）", ""),
    ("audit_log.actor_kind", "coordinator", "study team member (configured label)", "研究团队成员（配置的名称）", ""),
    ("audit_log.actor_kind", "operator", "operator (command line)", "运维（命令行）", ""),
    ("audit_log.actor_kind", "system", "the bot itself", "系统", ""),
    ("audit_log.actor_kind", "user", "someone not enrolled nor configured (keyed hash)", "未入组人员（加密编号）", ""),
]


def codebook_rows(settings: Settings) -> list[dict]:
    rows = []

    def add(field: str, code: str, en: str, zh: str, level: str = "", meaning: str = "") -> None:
        rows.append({"field": field, "code": code, "label_en": en, "label_zh": zh, "level": level,
                     "meaning": meaning})

    for state, (en, zh, meaning) in _DOSE_STATES.items():
        add("dose_days.state", state.value, en, zh, meaning=meaning)
    for source, (en, zh, meaning) in _SOURCES.items():
        add("dose_days.source", source.value, en, zh, meaning=meaning)
    for code in MISSED_REASONS:
        add("dose_days.missed_reason", code, *_MISSED[code])
    add("patients.pause_origin", PauseOrigin.PATIENT.value, "paused by the patient (/stop)", "患者自己暂停")
    add("patients.pause_origin", PauseOrigin.TEAM.value, "held by the study team", "研究团队暂停用药",
        meaning="only staff may lift it; days closing during it are held")
    for field, code, en, zh, level in _SIMPLE:
        add(field, code, en, zh, level)
    for status in InvitationStatus:
        add("invitations.status", status.value, status.value, {"valid": "有效", "used": "已使用", "expired": "已过期",
                                                                "revoked": "已撤销"}.get(status.value, status.value))
    for kind, level in LEVEL_BY_KIND.items():
        en, zh = _ALERTS.get(kind, (kind, kind))
        add("alerts.kind", kind, en, zh, level)
    for kind in settings.visits.kinds:
        add("visits.kind", kind.code, kind.en, kind.zh)
    for category in settings.conmed.categories:
        add("concomitant_medications.category", category.code, category.en, category.zh)
    for symptom in settings.triage.symptoms:
        add("symptom_reports.symptoms", symptom.code, symptom.en, symptom.zh, symptom.level, symptom.group)
    return rows


__all__ = ["codebook_rows"]
