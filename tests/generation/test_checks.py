"""The checks on real French report-card sentences: those that pass and those that fail."""

import pytest

from generation.checks import (
    DEFAULT_BANNED_PHRASES,
    CheckFlag,
    check_text,
    clean_text,
    flag_severity,
    normalize,
    word_count,
)

GOOD = [
    "Ensemble satisfaisant. L'élève participe volontiers et fournit un travail régulier.",
    "Très bon trimestre, élève sérieuse et investie. Il faut continuer ainsi !",
    "Trimestre décevant : le travail personnel reste insuffisant. Des efforts sont attendus.",
    "Des progrès nets depuis le premier trimestre ; l'analyse de documents reste à consolider.",
    "Les deux trimestres montrent une progression régulière, bravo.",
    "Un regard neuf sur les documents et une participation orale enrichissante.",
    "Nous l'encourageons à poursuivre ses efforts à l'écrit.",
    "Nul doute que le travail fourni portera ses fruits.",
]


def codes(text, **kwargs):
    return [flag.code for flag in check_text(text, **kwargs)]


@pytest.mark.parametrize("text", GOOD)
def test_good_appreciations_pass_every_check(text):
    assert check_text(text, forbidden_names=["Emma Martin"], max_chars=255) == []


# --- length ---


@pytest.mark.parametrize("text", ["", "   ", "…", " ".join(["Travail"] * 41)])
def test_length_flags_empty_and_over_40_words(text):
    assert "length" in codes(text)


def test_length_accepts_40_words_and_counts_elisions_once():
    assert word_count("L'élève a peut-être progressé.") == 4
    forty = " ".join(["travail"] * 39 + ["sérieux."])
    assert word_count(forty) == 40
    assert "length" not in codes(forty)


# --- grade ---


@pytest.mark.parametrize(
    "text",
    [
        "Bon trimestre avec 15 de moyenne.",
        "Une moyenne de 12,5 encourageante.",
        "Une moyenne de 12.5 encourageante.",
        "Résultats solides : 14/20 ce trimestre.",
        "Des résultats en hausse, sur 20 c'est bien.",
        "Quinze sur vingt : un trimestre réussi.",
        "Une moyenne de douze, à consolider.",
        "Il a obtenu neuf, c'est insuffisant.",
        "Dix-neuf de moyenne, excellent trimestre.",
        "Élève classé 12e de la classe.",
    ],
)
def test_grade_flags_digits_and_spelled_out_numbers(text):
    assert "grade" in codes(text)


@pytest.mark.parametrize(
    "text",
    [
        "Une élève sérieuse, un travail de qualité.",
        "Des progrès depuis le 1er trimestre.",
        "Le premier trimestre était fragile, le second est meilleur.",
        "Les deux derniers devoirs sont réussis.",
        "Ces trois trimestres témoignent d'un réel investissement.",
        "Un regard neuf sur les sources.",
        "Rien de neuf dans la méthode : il faut la revoir.",
        "Septembre a été difficile, la suite est meilleure.",
    ],
)
def test_grade_leaves_articles_terms_and_idioms_alone(text):
    assert "grade" not in codes(text)


def test_grade_message_quotes_what_was_found():
    (flag,) = [flag for flag in check_text("Quinze sur 20.") if flag.code == "grade"]
    assert "20" in flag.message
    assert "quinze" in flag.message


# --- name ---


@pytest.mark.parametrize(
    "text",
    [
        "Emma fournit un travail sérieux.",
        "EMMA fournit un travail sérieux.",
        "Les progrès d'Emma sont nets.",
        "Mme Martin peut être fière de ce trimestre.",
        "Élève sérieuse, bravo Émma !",
    ],
)
def test_name_flags_any_part_of_the_name_accent_and_case_insensitive(text):
    assert "name" in codes(text, forbidden_names=["Emma Martin"])


def test_name_handles_compound_names_and_particles():
    names = ["Jean-Pierre Le Gall"]
    assert "name" in codes("Jean-Pierre progresse.", forbidden_names=names)
    assert "name" in codes("Pierre progresse.", forbidden_names=names)
    assert "name" in codes("Le travail de Gall est sérieux.", forbidden_names=names)
    # "Le" alone is a particle: every French text would match it.
    assert "name" not in codes("Le travail est sérieux.", forbidden_names=names)


def test_name_matches_whole_words_only():
    assert "name" not in codes("Un travail remarquable.", forbidden_names=["Marc"])
    assert "name" not in codes("Une analyse pertinente.", forbidden_names=["Ana"])
    assert "name" not in codes("Emma fournit un travail sérieux.")


# --- language ---


@pytest.mark.parametrize(
    "text",
    [
        "Good work this term, keep it up and stay focused.",
        "Buen trabajo este trimestre, sigue así con el esfuerzo.",
        "Gute Arbeit in diesem Trimester, weiter so.",
    ],
)
def test_language_flags_other_languages(text):
    assert "language" in codes(text)


def test_language_does_not_judge_very_short_texts():
    assert "language" not in codes("Good work.")
    assert "language" not in codes("Bravo !")


# --- personal ---


@pytest.mark.parametrize(
    "text",
    [
        "Tu dois travailler davantage.",
        "Continue, ton travail paie.",
        "Il faut t'investir davantage.",
        "Je suis satisfaite de ce trimestre.",
        "J'attends plus de rigueur.",
        "Élève qui m'a impressionnée ce trimestre.",
        "Vous devez fournir plus d'efforts.",
        "Votre travail est sérieux.",
    ],
)
def test_personal_flags_first_singular_and_second_person(text):
    assert "personal" in codes(text)


@pytest.mark.parametrize(
    "text",
    [
        "Élève sérieux qui doit s'investir davantage.",
        "Continuez ainsi !",
        "Nous l'encourageons à persévérer.",
        "Le travail est à approfondir pour progresser.",
    ],
)
def test_personal_accepts_impersonal_and_institutional_style(text):
    assert "personal" not in codes(text)


# --- wording ---


@pytest.mark.parametrize(
    "text",
    [
        "Peut mieux faire.",
        "Élève paresseux qui ne travaille pas.",
        "Un travail NUL ce trimestre.",
        "Résultats catastrophiques : aucun effort fourni.",
        "Un trimestre désastreux.",
        "Une élève fainéante.",
        "Un comportement lamentable.",
    ],
)
def test_wording_flags_the_default_banned_phrases(text):
    assert "wording" in codes(text)


def test_wording_default_list_comes_from_the_circulaire():
    assert "peut mieux faire" in DEFAULT_BANNED_PHRASES
    assert "nul" in DEFAULT_BANNED_PHRASES


def test_wording_catches_plurals_of_listed_phrases():
    assert "wording" in codes("Des résultats catastrophiques.")
    assert "wording" in codes("Des résultats médiocres.")


def test_wording_accepts_the_schools_phrases_accent_and_case_insensitively():
    text = "Élève trop bavard en classe, attention au Bavardage."
    assert "wording" not in codes(text)
    assert "wording" in codes(text, banned_phrases=["bavardage"])
    assert "wording" in codes("Trop de BAVARDAGES.", banned_phrases=["bavardages"])
    assert "wording" in codes("Efforts a fournir.", banned_phrases=["efforts à fournir"])


def test_wording_matches_whole_words():
    assert "wording" not in codes("Un travail annulé, à refaire.")
    assert "wording" not in codes("Le résultat est médiocrement présenté.", banned_phrases=[])
    assert "wording" in codes("Le résultat est médiocre.")


# --- characters ---


def test_too_long_chars_uses_the_schools_limit():
    text = "Ensemble satisfaisant, des efforts à poursuivre à l'écrit."
    assert "too_long_chars" not in codes(text)
    assert "too_long_chars" not in codes(text, max_chars=len(text))
    flags = check_text(text, max_chars=len(text) - 1)
    assert [flag.code for flag in flags] == ["too_long_chars"]
    assert str(len(text)) in flags[0].message


# --- severity, flags ---


def test_one_flag_per_code_with_a_french_message():
    flags = check_text("Tu as 12. Toi et moi, 13 et 14.")
    assert sorted(flag.code for flag in flags) == ["grade", "personal"]
    assert all(isinstance(flag, CheckFlag) and flag.message for flag in flags)


def test_flag_severity_ranks_fewer_and_lighter_flags_first():
    none = []
    light = [CheckFlag("length", "")]
    name = [CheckFlag("name", "")]
    two = [CheckFlag("length", ""), CheckFlag("personal", "")]
    assert flag_severity(none) == 0
    assert flag_severity(none) < flag_severity(light) < flag_severity(two) < flag_severity(name)


def test_normalize_strips_accents_case_and_curly_apostrophes():
    assert normalize("Élève d’ÉLITE Œuvre") == "eleve d'elite œuvre"


# --- clean_text ---


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('  "Bon trimestre."  ', "Bon trimestre."),
        ("« Bon trimestre, bravo. »", "Bon trimestre, bravo."),
        ("“Bon trimestre.”", "Bon trimestre."),
        ("'Bon trimestre.'", "Bon trimestre."),
        ('"Bon trimestre.', "Bon trimestre."),
        ("Bon travail. Des efforts sont att", "Bon travail."),
        ("Bon travail ! Il faudra pourtant", "Bon travail !"),
        ("Bon travail… mais il faut", "Bon travail…"),
        ("Trimestre encourageant", "Trimestre encourageant"),
        ("Une moyenne de 12.5 en hausse. Bi", "Une moyenne de 12.5 en hausse."),
        ("Bon travail.\n\nEfforts à poursuivre.", "Bon travail. Efforts à poursuivre."),
        ("«Bon» et «bien».", "«Bon» et «bien»."),
        ("L'élève progresse.", "L'élève progresse."),
        ("", ""),
    ],
)
def test_clean_text(raw, expected):
    assert clean_text(raw) == expected


# --- KnownNames: a whole school's names, matched as check_names matches them ---------------------

_SCHOOL_NAMES = ["Jean-Pierre Le Gall", "N'Diaye", "Lévêque", "prof.demo", "Emma", "da Silva"]


@pytest.mark.parametrize(
    "text",
    [
        "Jean-Pierre progresse.",
        "Pierre progresse.",
        "Un travail d'Emma soigné.",
        "Un travail de Jean-Pierre-Paul.",
        "Avec Mme N’Diaye.",
        "Voir prof.demo demain.",
        "Entretien avec Mme LÉVÊQUE.",
        "Un bel emmanchement.",
        "Silva progresse.",
        "Le Gall progresse.",
        "Rien à signaler.",
    ],
)
def test_known_names_match_as_check_names_does(text):
    from generation.checks import KnownNames, check_names

    assert bool(KnownNames(_SCHOOL_NAMES).found(text)) == bool(check_names(text, _SCHOOL_NAMES))


def test_known_names_ignore_institution_words():
    from generation.checks import INSTITUTION_WORDS, KnownNames

    school = KnownNames(["Lycée Émile-Zola", "Saint-Étienne"], ignore=INSTITUTION_WORDS)
    assert school.found("Un bel engagement au lycée et à la cité scolaire.") == []
    assert school.found("Sortie à Saint-Étienne.") == ["Saint-Étienne"]
    assert school.found("Le CDI du lycée Émile-Zola.") == ["Lycée Émile-Zola"]
