"""What the meeting pages say, in each language they speak.

Only the meeting's own words live here. Language choice (the person's locale, then
their organization's default, then English), text direction and the words the meeting
page shares with the survey pages (required/optional, yes/no, answer errors, "too many
attempts") come from ``app.surveys.messages``, so both kinds of personal link speak the
same languages and choose them by one rule. Strings are plain text with ``{name}``
placeholders; templates escape them."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping

from app.surveys import messages as survey_messages

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "title": "One-on-one with {name}",
        "minutes": "{minutes} minutes",
        "add_to_calendar": "Add to calendar",
        "status_scheduled": "Scheduled",
        "status_held": "Held",
        "status_skipped": "Skipped",
        "status_cancelled": "Cancelled",
        "status_heading": "Did the meeting take place?",
        "mark_held": "Mark as held",
        "mark_skipped": "Mark as skipped",
        "status_heading_ahead": "Will the meeting take place?",
        "status_hint_ahead": "It can be marked held once it has started.",
        "mark_scheduled": "Undo: back to scheduled",
        "checkin": "Check-in",
        "checkin_intro": "A few questions before the meeting. {name} will see your answers.",
        "checkin_submit": "Send my check-in",
        "checkin_change": "Change my answers",
        "checkin_waiting": "{name} has not sent the check-in yet.",
        "checkin_missing": "The check-in was not filled in.",
        "checkin_none": "There is no check-in for this meeting.",
        "your_answers": "Your answers",
        "their_answers": "Answers from {name}",
        "no_answer": "No answer",
        "talking_points": "Talking points",
        "talking_points_empty": "No talking points yet.",
        "talking_point_new": "New talking point",
        "action_items": "Action items",
        "action_items_empty": "No action items yet.",
        "action_item_new": "New action item",
        "owner": "Owner",
        "owner_you": "Me",
        "add": "Add",
        "added_by_you": "added by you",
        "added_by": "added by {name}",
        "owned_by_you": "for you",
        "owned_by": "for {name}",
        "carried_over": "open since the meeting of {date}",
        "mark_done": "Mark as done",
        "mark_open": "Mark as not done",
        "done": "done",
        "note": "My private notes",
        "note_hint": "Only you can see these notes: not {name}, not HR.",
        "note_save": "Save my notes",
        "note_saved": "Last saved {when}.",
        "back": "Back to the meeting page",
        "err_blank": "Write something first.",
        "err_too_long": "Please keep it to {max} characters (this has {length}).",
        "err_gone": "This item is no longer on this meeting's page; reload the page.",
        "err_form": "This form could not be read; reload the page and try again.",
        "not_found_title": "This link does not work",
        "not_found_body": (
            "Check that you opened the whole link from your calendar invitation or email. "
            "If it still does not work, ask the person who scheduled the meeting for a new one."
        ),
        "cancelled_title": "This meeting was cancelled",
        "cancelled_body": (
            "The meeting planned for {when} was cancelled. A meeting that is only moved "
            "keeps its link, so this one will not take place."
        ),
        "forbidden_title": "Only the other person can do this",
        "checkin_closed_title": "The check-in is closed",
        "checkin_closed_body": (
            "The check-in can only be sent while the meeting is still scheduled; this one "
            "is marked {status}."
        ),
        "report_only": "Only the person the check-in is for can send it.",
        "manager_only": "Only the manager can mark the meeting held or skipped.",
        "not_started_title": "The meeting has not started yet",
        "not_started_body": (
            "A meeting can be marked held once it has started, at {when}. If it will not "
            "take place, you can mark it skipped now."
        ),
        "ics_description": (
            "Your meeting page (check-in, talking points, action items, your private notes): {link}"
        ),
    },
    "fr": {
        "title": "Entretien individuel avec {name}",
        "minutes": "{minutes} minutes",
        "add_to_calendar": "Ajouter à l’agenda",
        "status_scheduled": "Prévu",
        "status_held": "Tenu",
        "status_skipped": "Non tenu",
        "status_cancelled": "Annulé",
        "status_heading": "L’entretien a-t-il eu lieu ?",
        "mark_held": "Marquer comme tenu",
        "mark_skipped": "Marquer comme non tenu",
        "status_heading_ahead": "L’entretien aura-t-il lieu ?",
        "status_hint_ahead": "Il pourra être marqué comme tenu une fois commencé.",
        "mark_scheduled": "Annuler : revenir à « Prévu »",
        "checkin": "Point préalable",
        "checkin_intro": ("Quelques questions avant l’entretien. {name} verra vos réponses."),
        "checkin_submit": "Envoyer mes réponses",
        "checkin_change": "Modifier mes réponses",
        "checkin_waiting": "{name} n’a pas encore envoyé ses réponses.",
        "checkin_missing": "Les questions préalables n’ont pas été remplies.",
        "checkin_none": "Pas de questions préalables pour cet entretien.",
        "your_answers": "Vos réponses",
        "their_answers": "Réponses de {name}",
        "no_answer": "Pas de réponse",
        "talking_points": "Sujets à aborder",
        "talking_points_empty": "Aucun sujet pour l’instant.",
        "talking_point_new": "Nouveau sujet",
        "action_items": "Actions",
        "action_items_empty": "Aucune action pour l’instant.",
        "action_item_new": "Nouvelle action",
        "owner": "Responsable",
        "owner_you": "Moi",
        "add": "Ajouter",
        "added_by_you": "ajouté par vous",
        "added_by": "ajouté par {name}",
        "owned_by_you": "pour vous",
        "owned_by": "pour {name}",
        "carried_over": "ouverte depuis l’entretien du {date}",
        "mark_done": "Marquer comme fait",
        "mark_open": "Marquer comme non fait",
        "done": "fait",
        "note": "Mes notes personnelles",
        "note_hint": "Vous seul voyez ces notes : ni {name}, ni les RH.",
        "note_save": "Enregistrer mes notes",
        "note_saved": "Enregistrées le {when}.",
        "back": "Revenir à la page de l’entretien",
        "err_blank": "Écrivez d’abord quelque chose.",
        "err_too_long": "Limitez-vous à {max} caractères (ce texte en compte {length}).",
        "err_gone": "Cet élément n’est plus sur la page de cet entretien ; rechargez la page.",
        "err_form": "Ce formulaire n’a pas pu être lu ; rechargez la page et réessayez.",
        "not_found_title": "Ce lien ne fonctionne pas",
        "not_found_body": (
            "Vérifiez que vous avez ouvert le lien complet de votre invitation ou de votre "
            "e-mail. S’il ne fonctionne toujours pas, demandez-en un nouveau à la personne "
            "qui a planifié l’entretien."
        ),
        "cancelled_title": "Cet entretien a été annulé",
        "cancelled_body": (
            "L’entretien prévu le {when} a été annulé. Un entretien simplement déplacé garde "
            "son lien : celui-ci n’aura donc pas lieu."
        ),
        "forbidden_title": "Seule l’autre personne peut faire cela",
        "checkin_closed_title": "Les questions préalables sont closes",
        "checkin_closed_body": (
            "Les réponses ne peuvent être envoyées que tant que l’entretien est prévu ; "
            "celui-ci est marqué « {status} »."
        ),
        "report_only": "Seule la personne à qui les questions sont destinées peut répondre.",
        "manager_only": "Seul le manager peut marquer l’entretien comme tenu ou non tenu.",
        "not_started_title": "L’entretien n’a pas encore commencé",
        "not_started_body": (
            "Un entretien peut être marqué comme tenu une fois commencé, le {when}. S’il "
            "n’aura pas lieu, vous pouvez dès maintenant le marquer comme non tenu."
        ),
        "ics_description": (
            "Votre page d’entretien (questions préalables, sujets, actions, vos notes "
            "personnelles) : {link}"
        ),
    },
    "ar": {
        "title": "اجتماع فردي مع {name}",
        "minutes": "{minutes} دقيقة",
        "add_to_calendar": "إضافة إلى التقويم",
        "status_scheduled": "مجدول",
        "status_held": "انعقد",
        "status_skipped": "لم ينعقد",
        "status_cancelled": "ملغى",
        "status_heading": "هل انعقد الاجتماع؟",
        "mark_held": "تحديد أنه انعقد",
        "mark_skipped": "تحديد أنه لم ينعقد",
        "status_heading_ahead": "هل سينعقد الاجتماع؟",
        "status_hint_ahead": "يمكن تحديد أنه انعقد بعد بدئه.",
        "mark_scheduled": "تراجع: إعادته إلى «مجدول»",
        "checkin": "أسئلة ما قبل الاجتماع",
        "checkin_intro": "بعض الأسئلة قبل الاجتماع. سيرى {name} إجاباتك.",
        "checkin_submit": "إرسال إجاباتي",
        "checkin_change": "تعديل إجاباتي",
        "checkin_waiting": "لم يرسل {name} إجاباته بعد.",
        "checkin_missing": "لم تتم الإجابة عن أسئلة ما قبل الاجتماع.",
        "checkin_none": "لا توجد أسئلة قبل هذا الاجتماع.",
        "your_answers": "إجاباتك",
        "their_answers": "إجابات {name}",
        "no_answer": "لا إجابة",
        "talking_points": "نقاط النقاش",
        "talking_points_empty": "لا توجد نقاط نقاش بعد.",
        "talking_point_new": "نقطة نقاش جديدة",
        "action_items": "المهام",
        "action_items_empty": "لا توجد مهام بعد.",
        "action_item_new": "مهمة جديدة",
        "owner": "المسؤول",
        "owner_you": "أنا",
        "add": "إضافة",
        "added_by_you": "أضفتها أنت",
        "added_by": "أضافها {name}",
        "owned_by_you": "لك",
        "owned_by": "لـ {name}",
        "carried_over": "مفتوحة منذ اجتماع {date}",
        "mark_done": "تحديد كمنجزة",
        "mark_open": "تحديد كغير منجزة",
        "done": "منجزة",
        "note": "ملاحظاتي الخاصة",
        "note_hint": "لا يرى هذه الملاحظات أحد سواك: لا {name} ولا الموارد البشرية.",
        "note_save": "حفظ ملاحظاتي",
        "note_saved": "آخر حفظ {when}.",
        "back": "العودة إلى صفحة الاجتماع",
        "err_blank": "اكتب شيئًا أولًا.",
        "err_too_long": "يرجى ألا يتجاوز النص {max} حرف (عدد أحرفه الآن {length}).",
        "err_gone": "لم يعد هذا العنصر في صفحة هذا الاجتماع؛ أعد تحميل الصفحة.",
        "err_form": "تعذرت قراءة هذا النموذج؛ أعد تحميل الصفحة وحاول مرة أخرى.",
        "not_found_title": "هذا الرابط لا يعمل",
        "not_found_body": (
            "تأكد من أنك فتحت الرابط كاملًا كما ورد في دعوة التقويم أو البريد الإلكتروني. "
            "إذا استمرت المشكلة، فاطلب رابطًا جديدًا من الشخص الذي حدد موعد الاجتماع."
        ),
        "cancelled_title": "أُلغي هذا الاجتماع",
        "cancelled_body": (
            "أُلغي الاجتماع الذي كان مقررًا في {when}. الاجتماع الذي يُنقل إلى موعد آخر "
            "يحتفظ برابطه، لذا لن ينعقد هذا الاجتماع."
        ),
        "forbidden_title": "لا يمكن القيام بهذا إلا من الطرف الآخر",
        "checkin_closed_title": "أُغلقت أسئلة ما قبل الاجتماع",
        "checkin_closed_body": (
            "لا يمكن إرسال الإجابات إلا ما دام الاجتماع مجدولًا؛ وهذا الاجتماع حالته «{status}»."
        ),
        "report_only": "لا يرسل الإجابات إلا الشخص الموجهة إليه الأسئلة.",
        "manager_only": "لا يحدد انعقاد الاجتماع أو عدمه إلا المدير.",
        "not_started_title": "لم يبدأ الاجتماع بعد",
        "not_started_body": (
            "يمكن تحديد أن الاجتماع انعقد بعد بدئه في {when}. وإذا كان لن ينعقد، فيمكنك "
            "الآن تحديد أنه لم ينعقد."
        ),
        "ics_description": (
            "صفحة اجتماعك (أسئلة ما قبل الاجتماع، نقاط النقاش، المهام، ملاحظاتك الخاصة): {link}"
        ),
    },
}


def strings(locale: str) -> Mapping[str, str]:
    """Every string of one page language: the meeting's own first, then the survey
    pages' (yes/no, required, answer errors), English for a language we do not speak."""
    language = survey_messages.language(locale)
    own = MESSAGES.get(language, MESSAGES[survey_messages.FALLBACK])
    return ChainMap(own, dict(survey_messages.strings(locale)))


def text(locale: str, key: str, **params: object) -> str:
    """One string, filled in."""
    template = strings(locale)[key]
    return template.format(**params) if params else template
