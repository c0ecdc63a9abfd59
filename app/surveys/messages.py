"""What the answer pages say, in each language they speak, and how a language is chosen.

The pages speak English, French and Arabic; a person whose locale is none of these gets
their organization's default language, then English. Survey prompts are chosen by the
same rule from whatever locales the survey author gave, so ``fr-CA`` reads French
prompts when no Canadian ones exist. Strings are plain text with ``{name}``
placeholders; templates escape them (a placeholder that holds markup, such as a
``<time>`` element, is filled in by the page renderer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

RTL_LANGUAGES = frozenset({"ar", "fa", "he", "ur"})
FALLBACK = "en"

MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "open_until": "Open until",
        "anonymous": (
            "This survey is anonymous. Your answers are stored without your name or "
            "anything that leads back to you, and results are only shown for groups of "
            "at least {min} people."
        ),
        "attributed": ("This survey is not anonymous: your answers are stored with your name."),
        "required": "required",
        "optional": "optional",
        "enps_low": "not at all likely",
        "enps_high": "extremely likely",
        "yes": "Yes",
        "no": "No",
        "choose_any": "Choose all that apply.",
        "text_hint": "Up to {max} characters.",
        "submit": "Send my answers",
        "error": "Error",
        "fix_errors": "Please check your answers",
        "thanks_title": "Thank you",
        "thanks_body": "Your answers have been recorded.",
        "already_title": "Already answered",
        "already_body": "You have already answered this survey. Thank you!",
        "not_found_title": "This link does not work",
        "not_found_body": (
            "Check that you opened the whole link from your email. If it still does not "
            "work, ask the person who sent you the survey for a new one."
        ),
        "closed_title": "This survey has closed",
        "closed_body": "It closed on {when}. Answers can no longer be sent.",
        "too_many_title": "Too many attempts",
        "too_many_body": (
            "Too many links that do not work were opened from your network. "
            "Please try again in {minutes} minutes."
        ),
        "bad_request_title": "Your answers could not be read",
        "bad_request_body": "Please go back, reload the page and send the form again.",
        # Validation errors, shown beside the question.
        "err_required": "Please answer this question.",
        "err_scale": "Choose a number from {min} to {max}.",
        "err_yes_no": "Answer yes or no.",
        "err_choice": "Choose one of the options.",
        "err_choices": "Choose one or more of the options.",
        "err_text": "Write your answer as text.",
        "err_too_long": "Please keep it to {max} characters (this has {length}).",
        "err_unknown": "This survey has no such question.",
    },
    "fr": {
        "open_until": "Ouvert jusqu’au",
        "anonymous": (
            "Ce questionnaire est anonyme. Vos réponses sont enregistrées sans votre nom "
            "ni rien qui permette de remonter jusqu’à vous, et les résultats ne sont "
            "présentés que pour des groupes d’au moins {min} personnes."
        ),
        "attributed": (
            "Ce questionnaire n’est pas anonyme : vos réponses sont enregistrées avec votre nom."
        ),
        "required": "obligatoire",
        "optional": "facultatif",
        "enps_low": "pas du tout probable",
        "enps_high": "extrêmement probable",
        "yes": "Oui",
        "no": "Non",
        "choose_any": "Choisissez toutes les réponses qui conviennent.",
        "text_hint": "{max} caractères au plus.",
        "submit": "Envoyer mes réponses",
        "error": "Erreur",
        "fix_errors": "Veuillez vérifier vos réponses",
        "thanks_title": "Merci",
        "thanks_body": "Vos réponses ont bien été enregistrées.",
        "already_title": "Déjà répondu",
        "already_body": "Vous avez déjà répondu à ce questionnaire. Merci !",
        "not_found_title": "Ce lien ne fonctionne pas",
        "not_found_body": (
            "Vérifiez que vous avez ouvert le lien complet reçu par e-mail. S’il ne "
            "fonctionne toujours pas, demandez-en un nouveau à la personne qui vous a "
            "envoyé le questionnaire."
        ),
        "closed_title": "Ce questionnaire est clos",
        "closed_body": "Il a été clos le {when}. Il n’est plus possible d’envoyer des réponses.",
        "too_many_title": "Trop de tentatives",
        "too_many_body": (
            "Trop de liens invalides ont été ouverts depuis votre réseau. "
            "Veuillez réessayer dans {minutes} minutes."
        ),
        "bad_request_title": "Vos réponses n’ont pas pu être lues",
        "bad_request_body": (
            "Veuillez revenir en arrière, recharger la page et envoyer le formulaire à nouveau."
        ),
        "err_required": "Veuillez répondre à cette question.",
        "err_scale": "Choisissez un nombre de {min} à {max}.",
        "err_yes_no": "Répondez par oui ou par non.",
        "err_choice": "Choisissez l’une des options.",
        "err_choices": "Choisissez une ou plusieurs options.",
        "err_text": "Écrivez votre réponse sous forme de texte.",
        "err_too_long": "Limitez-vous à {max} caractères (ce texte en compte {length}).",
        "err_unknown": "Ce questionnaire ne contient pas cette question.",
    },
    "ar": {
        "open_until": "متاح حتى",
        "anonymous": (
            "هذا الاستبيان مجهول الهوية. تُحفظ إجاباتك دون اسمك أو أي شيء يدل عليك، "
            "ولا تُعرض النتائج إلا لمجموعات لا يقل عدد أفرادها عن {min}."
        ),
        "attributed": "هذا الاستبيان ليس مجهول الهوية: تُحفظ إجاباتك مع اسمك.",
        "required": "إلزامي",
        "optional": "اختياري",
        "enps_low": "غير محتمل على الإطلاق",
        "enps_high": "محتمل للغاية",
        "yes": "نعم",
        "no": "لا",
        "choose_any": "اختر كل ما ينطبق.",
        "text_hint": "حتى {max} حرف.",
        "submit": "إرسال إجاباتي",
        "error": "خطأ",
        "fix_errors": "يرجى مراجعة إجاباتك",
        "thanks_title": "شكرًا لك",
        "thanks_body": "تم تسجيل إجاباتك.",
        "already_title": "تمت الإجابة مسبقًا",
        "already_body": "لقد أجبت على هذا الاستبيان من قبل. شكرًا لك!",
        "not_found_title": "هذا الرابط لا يعمل",
        "not_found_body": (
            "تأكد من أنك فتحت الرابط كاملًا كما ورد في بريدك الإلكتروني. "
            "إذا استمرت المشكلة، فاطلب رابطًا جديدًا من الشخص الذي أرسل إليك الاستبيان."
        ),
        "closed_title": "تم إغلاق هذا الاستبيان",
        "closed_body": "أُغلق في {when}. لم يعد من الممكن إرسال الإجابات.",
        "too_many_title": "محاولات كثيرة جدًا",
        "too_many_body": (
            "فُتحت روابط غير صالحة كثيرة من شبكتك. يرجى المحاولة مرة أخرى بعد {minutes} دقيقة."
        ),
        "bad_request_title": "تعذرت قراءة إجاباتك",
        "bad_request_body": "يرجى الرجوع وإعادة تحميل الصفحة ثم إرسال النموذج مرة أخرى.",
        "err_required": "يرجى الإجابة عن هذا السؤال.",
        "err_scale": "اختر رقمًا من {min} إلى {max}.",
        "err_yes_no": "أجب بنعم أو لا.",
        "err_choice": "اختر أحد الخيارات.",
        "err_choices": "اختر خيارًا واحدًا أو أكثر.",
        "err_text": "اكتب إجابتك نصًا.",
        "err_too_long": "يرجى ألا يتجاوز النص {max} حرف (عدد أحرفه الآن {length}).",
        "err_unknown": "لا يحتوي هذا الاستبيان على هذا السؤال.",
    },
}

SUPPORTED = tuple(MESSAGES)


def language(tag: str) -> str:
    """The primary language subtag, lower-cased: ``fr-CA`` → ``fr``."""
    return tag.split("-")[0].lower()


def direction(tag: str) -> str:
    return "rtl" if language(tag) in RTL_LANGUAGES else "ltr"


def preference_chain(locale: str | None, default: str | None) -> list[str]:
    """The locales to try, best first: the person's tag, its language, the
    organization's default tag and language, then English."""
    chain: list[str] = []
    for tag in (locale, default):
        if tag:
            chain += [tag, language(tag)]
    chain.append(FALLBACK)
    return list(dict.fromkeys(chain))


def negotiate(wanted: Sequence[str], available: Iterable[str]) -> str | None:
    """The first of ``wanted`` that ``available`` has (tags compare case-insensitively,
    and a bare language also matches a regional tag: ``fr`` finds ``fr-FR``); None when
    nothing matches."""
    offered = list(available)
    exact = {tag.lower(): tag for tag in offered}
    by_language: dict[str, str] = {}
    for tag in offered:
        by_language.setdefault(language(tag), tag)
    for tag in wanted:
        if tag.lower() in exact:
            return exact[tag.lower()]
        if "-" not in tag and tag.lower() in by_language:
            return by_language[tag.lower()]
    return None


def ui_locale(wanted: Sequence[str]) -> str:
    """The page language for a preference chain: one the pages speak, English last."""
    return negotiate(wanted, SUPPORTED) or FALLBACK


def from_accept_language(header: str | None) -> list[str]:
    """Tags from an ``Accept-Language`` header, by quality (RFC 9110 §12.5.4), for the
    pages shown before we know whose link it is (an unknown link, too many attempts)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*" or len(tag) > 35:
            continue
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, index, tag))
    chain: list[str] = []
    for _, _, tag in sorted(ranked):
        chain += [tag, language(tag)]
    chain.append(FALLBACK)
    return list(dict.fromkeys(chain))


def strings(locale: str) -> Mapping[str, str]:
    """Every string of one page language (English for one the pages do not speak)."""
    return MESSAGES.get(language(locale), MESSAGES[FALLBACK])


def text(locale: str, key: str, **params: object) -> str:
    """One string, filled in."""
    template = strings(locale)[key]
    return template.format(**params) if params else template
