"""Golden tests: the prompts must match the model card character for character."""

from decimal import Decimal

import pytest

from generation.prompts import (
    CARD_SYSTEM_PROMPT,
    CHAT_TEMPLATE_DATE,
    PROMPT_VERSION,
    PromptInputs,
    build_messages,
    format_number,
    system_prompt,
)

# Copied from the model card's code (typos included), not from our module.
CARD_SYSTEM = (
    "Vous êtes une IA assistant les enseignants d'histoire-géographie en rédigeant à leur place"
    " une appréciation personnalisée pour leur élève en fonction de ses performances. Votre"
    " appreciation doit être en français, et doit aider l'élève à comprendre ses points forts"
    " et les axes d'amélioration. Votre appréciation doit comporter de 1 à 40 mots. Votre"
    " appréciation ne doit jamais comporter la valeur de la note. Votre appréciation doit"
    " utiliser le style impersonnel.Attention l'élément le plus important de votre analyse doit"
    " rester la moyenne du trimestre"
)


def inputs(trimester, averages, subject="Histoire-Géographie", ratings=(7, 6, 8)):
    behaviour, participation, work = ratings
    return PromptInputs(
        subject_name=subject,
        trimester=trimester,
        averages=averages,
        behaviour=behaviour,
        participation=participation,
        work=work,
    )


def test_system_prompt_is_the_cards_verbatim():
    assert CARD_SYSTEM_PROMPT == CARD_SYSTEM
    assert "Votre appreciation doit" in CARD_SYSTEM_PROMPT  # the card's typo, kept
    assert "impersonnel.Attention" in CARD_SYSTEM_PROMPT
    assert not CARD_SYSTEM_PROMPT.endswith(".")


@pytest.mark.parametrize(
    "subject",
    [
        "Histoire-Géographie",
        "histoire-géographie",
        "Histoire géographie",
        "HGGSP",
        "Histoire-Géographie-Géopolitique-Science-Politique",
        "Histoire-géographie, géopolitique et sciences politiques",
    ],
)
def test_card_subjects_get_the_card_prompt(subject):
    messages = build_messages(inputs(1, (12, None, None), subject=subject))
    assert messages[0] == {"role": "system", "content": CARD_SYSTEM}


def test_trimester_1_user_prompt():
    messages = build_messages(inputs(1, (12, None, None)))
    assert [message["role"] for message in messages] == ["system", "user"]
    assert messages[1]["content"] == (
        "Veuillez rédiger une appréciation en moins de 40 mots pour le premier trimestre pour"
        " cet élève qui a eu 12 de moyenne, j'ai évalué son comportement à 7/10, sa"
        " participation à 6/10 et son travail à 8/10. Les notes ne doivent pas apparaître dans"
        " l'appréciation."
    )


def test_trimester_2_user_prompt_quotes_t2_then_t1():
    messages = build_messages(inputs(2, (Decimal("9.50"), 13.25, None), ratings=(5, 4.5, 3)))
    assert messages[1]["content"] == (
        "Veuillez rédiger une appréciation en moins de 40 mots pour le deuxième trimestre pour"
        " cet élève qui a eu 13.25 de moyenne ce trimestre et 9.5 au premier trimestre, j'ai"
        " évalué son comportement à 5/10, sa participation à 4.5/10 et son travail à 3/10. Les"
        " notes ne doivent pas apparaître dans l'appréciation."
    )


def test_trimester_3_user_prompt_quotes_t3_t2_t1():
    messages = build_messages(inputs(3, (11, Decimal("12.0"), 14.5), ratings=(10, 0, 9)))
    assert messages[1]["content"] == (
        "Veuillez rédiger une appréciation en moins de 40 mots pour le troisième trimestre pour"
        " cet élève qui a eu 14.5 de moyenne ce trimestre, 12 au deuxième trimestre et 11 au"
        " premier trimestre, j'ai évalué son comportement à 10/10, sa participation à 0/10 et"
        " son travail à 9/10. Les notes ne doivent pas apparaître dans l'appréciation."
    )


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Anglais", "les enseignants d'anglais en rédigeant"),
        ("Mathématiques", "les enseignants de mathématiques en rédigeant"),
        ("Éducation musicale", "les enseignants d'éducation musicale en rédigeant"),
        ("Histoire des arts", "les enseignants d'histoire des arts en rédigeant"),
        ("Physique-Chimie", "les enseignants de physique-chimie en rédigeant"),
        ("SVT", "les enseignants de SVT en rédigeant"),
        ("EPS", "les enseignants d'EPS en rédigeant"),
        ("Humanités, littérature et philosophie", "les enseignants d'humanités, littérature"),
    ],
)
def test_other_subjects_replace_the_subject_with_elision(subject, expected):
    prompt = system_prompt(subject)
    assert expected in prompt
    assert "histoire-géographie" not in prompt
    # Only the subject changes: the rest is the card's wording.
    assert prompt.startswith("Vous êtes une IA assistant les enseignants ")
    assert prompt.endswith(CARD_SYSTEM.split("histoire-géographie", 1)[1])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (14, "14"),
        (14.0, "14"),
        (Decimal("14.00"), "14"),
        (12.5, "12.5"),
        (Decimal("12.50"), "12.5"),
        (Decimal("8.25"), "8.25"),
        (0, "0"),
        (0.0, "0"),
        (20, "20"),
        (12.1, "12.1"),
        (Decimal("-0"), "0"),
    ],
)
def test_numbers_are_written_like_json_numbers(value, expected):
    assert format_number(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), True, "12"])
def test_non_numbers_are_refused(value):
    with pytest.raises(ValueError):
        format_number(value)


@pytest.mark.parametrize(
    ("trimester", "averages", "missing"),
    [
        (1, (None, None, None), "trimester 1"),
        (2, (12, None, None), "trimester 2"),
        (3, (12, 13, None), "trimester 3"),
    ],
)
def test_missing_current_average_raises(trimester, averages, missing):
    with pytest.raises(ValueError, match=f"The {missing} average is missing"):
        build_messages(inputs(trimester, averages))


# The card's form asks for the averages of the 3 trimesters "ou N/A si inapproprié": an earlier
# term's average that does not apply (a student who joined mid-year) is written N/A.
def test_trimester_2_without_a_first_term_average_says_na():
    messages = build_messages(inputs(2, (None, 13.25, None), ratings=(5, 4.5, 3)))
    assert messages[1]["content"] == (
        "Veuillez rédiger une appréciation en moins de 40 mots pour le deuxième trimestre pour"
        " cet élève qui a eu 13.25 de moyenne ce trimestre et N/A au premier trimestre, j'ai"
        " évalué son comportement à 5/10, sa participation à 4.5/10 et son travail à 3/10. Les"
        " notes ne doivent pas apparaître dans l'appréciation."
    )
    assert messages[0]["content"] == CARD_SYSTEM


@pytest.mark.parametrize(
    ("averages", "quoted"),
    [
        ((None, 12, 14.5), "14.5 de moyenne ce trimestre, 12 au deuxième trimestre et N/A au"),
        ((11, None, 14.5), "14.5 de moyenne ce trimestre, N/A au deuxième trimestre et 11 au"),
        ((None, None, 14.5), "14.5 de moyenne ce trimestre, N/A au deuxième trimestre et N/A au"),
    ],
)
def test_trimester_3_with_missing_earlier_averages_says_na(averages, quoted):
    content = build_messages(inputs(3, averages, ratings=(10, 0, 9)))[1]["content"]
    assert content == (
        "Veuillez rédiger une appréciation en moins de 40 mots pour le troisième trimestre pour"
        f" cet élève qui a eu {quoted} premier trimestre, j'ai évalué son comportement à 10/10,"
        " sa participation à 0/10 et son travail à 9/10. Les notes ne doivent pas apparaître"
        " dans l'appréciation."
    )


def test_later_averages_are_not_required_for_an_earlier_trimester():
    messages = build_messages(inputs(1, (12, 13, None)))
    assert "13" not in messages[1]["content"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trimester": 4}, "trimester must be 1, 2 or 3"),
        ({"averages": (21, None, None)}, "between 0 and 20"),
        ({"averages": (-1, None, None)}, "between 0 and 20"),
        ({"behaviour": 11}, "behaviour rating must be between 0 and 10"),
        ({"work": None}, "work rating is missing"),
        ({"subject_name": "  "}, "subject name is empty"),
        ({"averages": (12, 13)}, "Three averages"),
    ],
)
def test_invalid_inputs_raise(kwargs, message):
    values = {
        "subject_name": "Anglais",
        "trimester": 1,
        "averages": (12, None, None),
        "behaviour": 5,
        "participation": 5,
        "work": 5,
    }
    values.update(kwargs)
    with pytest.raises(ValueError, match=message):
        build_messages(PromptInputs(**values))


def test_prompt_inputs_hold_no_name_and_are_frozen():
    fields = set(PromptInputs.__dataclass_fields__)
    assert fields == {"subject_name", "trimester", "averages", "behaviour", "participation", "work"}
    prompt_inputs = inputs(1, [12, None, None])
    assert prompt_inputs.averages == (12, None, None)  # a list is stored as a tuple
    with pytest.raises(AttributeError):
        prompt_inputs.trimester = 2


def test_constants():
    # Unsloth's llama-3.1 template (the adapter's training) writes "26 July 2024", not Meta's
    # "26 Jul 2024": the platform's default date is the adapter's.
    assert CHAT_TEMPLATE_DATE == "26 July 2024"
    assert PROMPT_VERSION


def test_messages_are_fresh_lists():
    first = build_messages(inputs(1, (12, None, None)))
    first[0]["content"] = "changed"
    assert build_messages(inputs(1, (12, None, None)))[0]["content"] == CARD_SYSTEM
