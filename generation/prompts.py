"""The prompts the appreciation adapter was trained on, rebuilt from the model card.

The adapter (eltorio/Llama-3.2-3B-appreciation) answers best to the exact wording it saw in
training, so the system prompt and the three trimester prompts are reproduced character for
character, typos included ("appreciation", "impersonnel.Attention"). Pure module: no torch, no
database, so the web process can show a prompt without loading a model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from common.scales import AVERAGE_MAX, RATING_MAX
from common.text import strip_accents

# Bump when the wording sent to the model changes, so stored drafts say which prompt made them.
# "263b40b" is the model card revision the wording was copied from.
PROMPT_VERSION = "card-263b40b.1"

# The Llama 3.x chat template writes "Today Date: <today>" unless date_string is given: the same
# inputs would give a different prompt every day. The adapter was trained with Unsloth's
# llama-3.1 template, which writes this date when given none (Meta's falls back to "26 Jul
# 2024"): the default of settings.APPRECIATION_CHAT_DATE, which inference and the training set use.
CHAT_TEMPLATE_DATE = "26 July 2024"


_CARD_SUBJECT = "histoire-géographie"
_SYSTEM_PROMPT_HEAD = "Vous êtes une IA assistant les enseignants "
_SYSTEM_PROMPT_TAIL = (
    " en rédigeant à leur place une appréciation personnalisée pour leur élève en fonction de"
    " ses performances. Votre appreciation doit être en français, et doit aider l'élève à"
    " comprendre ses points forts et les axes d'amélioration. Votre appréciation doit comporter"
    " de 1 à 40 mots. Votre appréciation ne doit jamais comporter la valeur de la note. Votre"
    " appréciation doit utiliser le style impersonnel.Attention l'élément le plus important de"
    " votre analyse doit rester la moyenne du trimestre"
)
# The card's prompt, verbatim: used for the card's own subjects.
CARD_SYSTEM_PROMPT = _SYSTEM_PROMPT_HEAD + "d'" + _CARD_SUBJECT + _SYSTEM_PROMPT_TAIL

_RATINGS = (
    "j'ai évalué son comportement à {behaviour}/10, sa participation à {participation}/10"
    " et son travail à {work}/10. Les notes ne doivent pas apparaître dans l'appréciation."
)
_OPENING = "Veuillez rédiger une appréciation en moins de 40 mots pour le {trimester_full} "
# Card variables: moyenne_1 = T1, moyenne_2 = T2, moyenne_3 = T3.
_USER_PROMPTS = {
    1: _OPENING + "pour cet élève qui a eu {t1} de moyenne, " + _RATINGS,
    2: _OPENING + "pour cet élève qui a eu {t2} de moyenne ce trimestre et {t1} au premier"
    " trimestre, " + _RATINGS,
    3: _OPENING + "pour cet élève qui a eu {t3} de moyenne ce trimestre, {t2} au deuxième"
    " trimestre et {t1} au premier trimestre, " + _RATINGS,
}
_TRIMESTER_FULL = {1: "premier trimestre", 2: "deuxième trimestre", 3: "troisième trimestre"}
# The card's form takes "notes des 3 trimestres ou N/A si inapproprié": an earlier term's
# average that does not apply (a student who joined the class mid-year) is sent as N/A.
NOT_APPLICABLE = "N/A"

# The card's subjects, compared on letters only: the adapter was trained on them with the
# "histoire-géographie" prompt, HGGSP included.
_CARD_SUBJECT_KEYS = frozenset(
    {
        "histoiregeographie",
        "histoiregeo",
        "hggsp",
        "histoiregeographiegeopolitiquesciencepolitique",
        "histoiregeographiegeopolitiquesciencespolitiques",
        "histoiregeographiegeopolitiqueetsciencespolitiques",
    }
)
_VOWELS = frozenset("aeiouy")
# "h aspiré" subjects take "de" despite starting with h; other h words elide ("d'histoire").
_H_ASPIRE = ("hongrois", "hindi")
Number = Decimal | float | int


@dataclass(frozen=True)
class PromptInputs:
    """What the model is told about one student: no name, no identifier (GDPR)."""

    subject_name: str
    trimester: int
    # (T1, T2, T3); the current term's is required, earlier ones may be None (sent as N/A),
    # later ones are ignored. Lists are accepted and stored as a tuple.
    averages: tuple[Number | None, Number | None, Number | None]
    behaviour: Number
    participation: Number
    work: Number

    def __post_init__(self) -> None:
        object.__setattr__(self, "averages", tuple(self.averages))


def format_number(value: Number) -> str:
    """Write a number as the card's Gradio sliders sent it: JSON-like, "14", "12.5"."""
    if isinstance(value, bool) or not isinstance(value, Decimal | float | int):
        raise ValueError(f"Not a number: {value!r}")
    try:
        # str() of a float is its shortest repr, so 12.1 stays 12.1 and not 12.0999...
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"Not a number: {value!r}") from exc
    if not number.is_finite():
        raise ValueError(f"Not a finite number: {value!r}")
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def is_card_subject(subject_name: str) -> bool:
    """True for the subjects the adapter was trained on (the card's verbatim prompt)."""
    return _letters_key(subject_name) in _CARD_SUBJECT_KEYS


def system_prompt(subject_name: str) -> str:
    """The card's system prompt, with another subject's name where it is not the card's."""
    if is_card_subject(subject_name):
        return CARD_SYSTEM_PROMPT
    return _SYSTEM_PROMPT_HEAD + _with_de(_subject_phrase(subject_name)) + _SYSTEM_PROMPT_TAIL


def user_prompt(inputs: PromptInputs) -> str:
    """The card's user prompt for the trimester, with the earlier averages it quotes (N/A
    for an earlier term without one)."""
    _validate(inputs)
    t1, t2, t3 = (
        format_number(average) if average is not None else NOT_APPLICABLE
        for average in inputs.averages
    )
    return _USER_PROMPTS[inputs.trimester].format(
        trimester_full=_TRIMESTER_FULL[inputs.trimester],
        t1=t1,
        t2=t2,
        t3=t3,
        behaviour=format_number(inputs.behaviour),
        participation=format_number(inputs.participation),
        work=format_number(inputs.work),
    )


def build_messages(inputs: PromptInputs) -> list[dict[str, str]]:
    """The chat messages for one student, as the card builds them: system then user."""
    return [
        {"role": "system", "content": system_prompt(inputs.subject_name)},
        {"role": "user", "content": user_prompt(inputs)},
    ]


def _validate(inputs: PromptInputs) -> None:
    if not inputs.subject_name or not inputs.subject_name.strip():
        raise ValueError("The subject name is empty.")
    if inputs.trimester not in _USER_PROMPTS:
        raise ValueError(f"The trimester must be 1, 2 or 3, not {inputs.trimester!r}.")
    if len(inputs.averages) != 3:
        raise ValueError(f"Three averages (T1, T2, T3) are expected, got {len(inputs.averages)}.")
    # The current term's average is required; an earlier one may be missing (N/A).
    current = inputs.averages[inputs.trimester - 1]
    if current is None:
        raise ValueError(
            f"The trimester {inputs.trimester} average is missing: a trimester"
            f" {inputs.trimester} prompt needs the current term's average."
        )
    for term in range(1, inputs.trimester + 1):
        average = inputs.averages[term - 1]
        if average is not None:
            _check_range(f"The trimester {term} average", average, AVERAGE_MAX)
    for label, rating in (
        ("behaviour", inputs.behaviour),
        ("participation", inputs.participation),
        ("work", inputs.work),
    ):
        if rating is None:
            raise ValueError(f"The {label} rating is missing.")
        _check_range(f"The {label} rating", rating, RATING_MAX)


def _check_range(label: str, value: Number, maximum: int) -> None:
    format_number(value)  # rejects non-numbers and NaN first
    if not 0 <= value <= maximum:
        raise ValueError(f"{label} must be between 0 and {maximum}, not {value}.")


def _letters_key(text: str) -> str:
    return "".join(ch for ch in strip_accents(text.casefold()) if ch.isalnum())


def _subject_phrase(subject_name: str) -> str:
    # Lowercase like the card's "histoire-géographie", but keep acronyms (SVT, SES, EPS).
    words = re.split(r"(\s+)", subject_name.strip())
    return "".join(
        word if len(word) >= 2 and word.isalpha() and word.isupper() else word.lower()
        for word in words
    )


def _with_de(phrase: str) -> str:
    first = strip_accents(phrase[:1]).encode("ascii", "ignore").decode()
    first_word = phrase.split()[0].lower() if phrase.split() else ""
    acronym = phrase[:2].isupper()
    if first.lower() in _VOWELS:
        return "d'" + phrase
    if first.lower() == "h" and not acronym and not first_word.startswith(_H_ASPIRE):
        return "d'" + phrase
    return "de " + phrase
