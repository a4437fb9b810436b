"""Grammar, spelling and typography by Grammalecte: real French sentences that pass and fail,
the school's typographic spaces, the drafting loop, the review page and validation.

Grammalecte comes from Debian's python3-grammalecte (.ci/run installs it). With CI set, its
absence fails these tests; elsewhere they are skipped, saying why. The tests of the platform
without it (TestUnavailable) run everywhere.
"""

import logging
import os
import sys
import time
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from generation import grammar
from generation.checks import SEVERITY, check_text, collapse_spaces, flag_severity
from generation.drafting import draft_with_checks
from generation.models import Appreciation, Draft
from tests.generation.test_drafting import GOOD, GRADE, ScriptedBackend, items
from tests.generation.test_review import make_draft

NBSP, NNBSP = "\u00a0", "\u202f"
AGREEMENT = "Les élèves est sérieux."
A_WRONG = "Elle progresse a l'écrit."
A_RIGHT = "Il a progressé à l'oral."
# A benevolent, impersonal appréciation as a teacher writes it: nothing to flag.
BENEVOLENT = (
    "Élève sérieuse et impliquée, dont les résultats sont en progrès. Les efforts fournis"
    " à l'écrit doivent être poursuivis."
)


@pytest.fixture
def grammalecte():
    status = grammar.status()
    if not status.available:
        if os.environ.get("CI"):
            pytest.fail(f"Grammalecte is required in CI (python3-grammalecte): {status.detail}")
        pytest.skip(
            f"Grammalecte not installed (apt-get install python3-grammalecte): {status.detail}"
        )
    return status


def grammar_flags(text, **kwargs):
    return [
        f for f in check_text(text, **kwargs) if f.code in ("grammar", "spelling", "typography")
    ]


@pytest.mark.usefixtures("grammalecte")
class TestFrench:
    def test_agreement_error_is_flagged_with_grammalectes_message_span_and_suggestion(self):
        [flag] = grammar_flags(AGREEMENT)
        assert flag.code == "grammar"
        assert (flag.start, flag.end, flag.original) == (11, 14, "est")
        assert "Conjugaison erronée" in flag.message and "« est »" in flag.message
        assert flag.suggestions == ("sont",)
        assert grammar_flags("Les élèves sont sérieux.") == []

    def test_adjective_agreement(self):
        [flag] = grammar_flags("Ces résultats sont encourageant.")
        assert (flag.code, flag.original, flag.suggestions) == (
            "grammar",
            "encourageant",
            ("encourageants",),
        )
        assert grammar_flags("Ces résultats sont encourageants.") == []

    def test_a_and_à(self):
        assert grammar_flags(A_RIGHT) == []
        [flag] = grammar_flags(A_WRONG)
        assert (flag.original, flag.suggestions) == ("a", ("à",))
        assert "préposition" in flag.message

    def test_ses_ces_cest(self):
        assert grammar_flags("Ses efforts doivent être poursuivis.") == []
        assert grammar_flags("Ces efforts doivent être poursuivis.") == []
        flags = grammar_flags("C'est efforts doivent être poursuivis.")
        assert flags[0].original == "C'est" and set(flags[0].suggestions) == {"Ces", "Ses"}
        [flag] = grammar_flags("Ses un bon trimestre.")
        # The text types the straight apostrophe: so does the suggestion.
        assert (flag.original, flag.suggestions) == ("Ses", ("C'est",))

    def test_a_benevolent_appreciation_has_no_flag_at_all(self):
        assert check_text(BENEVOLENT) == []
        assert check_text(BENEVOLENT.replace("'", "’")) == []

    def test_spelling_with_suggestions_and_acronyms_left_alone(self):
        [flag] = grammar_flags("Un travail sérieu en HGGSP et en SVT.")
        assert (flag.code, flag.original) == ("spelling", "sérieu")
        assert "sérieux" in flag.suggestions

    def test_each_error_is_its_own_flag_the_other_checks_stay_one_per_code(self):
        flags = check_text("Tu a 15 de moyenne. Les élèves est sérieux.")
        codes = [flag.code for flag in flags]
        assert codes.count("grade") == 1 and codes.count("personal") == 1
        assert {f.original for f in flags if f.code == "grammar"} >= {"a", "est"}

    def test_no_grammar_flag_on_a_text_in_another_language(self):
        flags = check_text("The student works hard and makes good progress this term.")
        assert [flag.code for flag in flags] == ["language"]

    def test_severity_sits_between_the_hard_and_the_soft_flags(self):
        assert SEVERITY["wording"] > SEVERITY["grammar"] > SEVERITY["personal"]
        one = grammar_flags(AGREEMENT)
        two = grammar_flags("Les élèves est sérieux. Elle progresse a l'écrit.")
        grade = check_text(GRADE)
        assert flag_severity(one) < flag_severity(two) < flag_severity(grade)

    def test_timing_after_load(self, grammalecte):
        started = time.perf_counter()
        for _ in range(10):
            grammar.check(BENEVOLENT, typographic_spaces=grammar.SPACES_NBSP)
        per_text = (time.perf_counter() - started) / 10
        # Measured about 5 ms on 2 shared cores; the bound only catches a reload per text.
        assert per_text < 0.25, per_text
        assert grammalecte.load_seconds > 0


TYPO = "Bon trimestre : des efforts à poursuivre !"


@pytest.mark.usefixtures("grammalecte")
class TestTypographicSpaces:
    def test_none_checks_no_space(self):
        assert grammar_flags(TYPO, typographic_spaces="none") == []
        assert grammar_flags("Bon trimestre: des efforts!", typographic_spaces="none") == []

    @pytest.mark.parametrize(("style", "space"), [("nbsp", NBSP), ("narrow", NNBSP)])
    def test_missing_space_is_flagged_with_the_schools_space(self, style, space):
        flags = grammar_flags(TYPO, typographic_spaces=style)
        assert [(f.code, f.original, f.suggestions) for f in flags] == [
            ("typography", " :", (f"{space}:",)),
            ("typography", " !", (f"{space}!",)),
        ]
        assert "établissement" in flags[0].message
        right = TYPO.replace(" :", f"{space}:").replace(" !", f"{space}!")
        assert grammar_flags(right, typographic_spaces=style) == []

    def test_the_other_no_break_space_is_flagged(self):
        text = f"Bon trimestre{NNBSP}: des efforts à poursuivre{NBSP}!"
        [flag] = grammar_flags(text, typographic_spaces="nbsp")
        assert (flag.original, flag.suggestions) == (f"{NNBSP}:", (f"{NBSP}:",))
        [flag] = grammar_flags(text, typographic_spaces="narrow")
        assert (flag.original, flag.suggestions) == (f"{NBSP}!", (f"{NNBSP}!",))


def test_apply_typographic_spaces_to_a_draft():
    apply = grammar.apply_typographic_spaces
    assert apply(TYPO, "none") == TYPO
    assert apply(TYPO, "nbsp") == f"Bon trimestre{NBSP}: des efforts à poursuivre{NBSP}!"
    assert apply("Bon trimestre; bravo!", "narrow") == f"Bon trimestre{NNBSP}; bravo{NNBSP}!"
    assert apply("Vraiment ?!", "nbsp") == f"Vraiment{NBSP}?!"
    assert apply("voir http://exemple.fr à 14:30.", "nbsp") == "voir http://exemple.fr à 14:30."


def test_collapse_spaces_keeps_no_break_spaces():
    assert collapse_spaces(f"  Bon\n trimestre{NBSP}!  Bravo{NNBSP}? ") == (
        f"Bon trimestre{NBSP}! Bravo{NNBSP}?"
    )
    assert collapse_spaces(f"a {NBSP} b") == "a b"


@pytest.mark.usefixtures("grammalecte")
class TestDrafting:
    def test_a_draft_with_a_grammar_error_is_regenerated(self):
        backend = ScriptedBackend({"a": [AGREEMENT, GOOD]})
        [outcome] = draft_with_checks(backend=backend, items=items("a"), max_attempts=3, seed=1)
        assert [keys for keys, _ in backend.calls] == [["a"], ["a"]]
        assert (outcome.text, outcome.flags, outcome.attempts) == (GOOD, (), 2)
        assert outcome.raw_texts == (AGREEMENT, GOOD)

    def test_a_grammar_error_is_kept_over_a_leaked_grade(self):
        backend = ScriptedBackend({"a": [GRADE, A_WRONG]})
        [outcome] = draft_with_checks(backend=backend, items=items("a"), max_attempts=2, seed=1)
        assert outcome.text == A_WRONG
        assert [flag.code for flag in outcome.flags] == ["grammar"]

    def test_a_draft_gets_the_schools_spaces_instead_of_a_regeneration(self):
        backend = ScriptedBackend({"a": [TYPO]})
        [outcome] = draft_with_checks(
            backend=backend,
            items=items("a", typographic_spaces="narrow"),
            max_attempts=3,
            seed=None,
        )
        assert (outcome.text, outcome.flags, outcome.attempts) == (
            f"Bon trimestre{NNBSP}: des efforts à poursuivre{NNBSP}!",
            (),
            1,
        )


HX = {"HTTP_HX_REQUEST": "true"}


def review_url(world):
    return reverse("generation:review", args=[world.assignment.pk, world.term.pk])


def validate(client, world, student, text, **extra):
    appreciation = Appreciation.objects.filter(student=student).first()
    data = {"text": text, "version": appreciation.version if appreciation else 0, **extra}
    url = reverse("generation:validate", args=[world.assignment.pk, world.term.pk, student.pk])
    return client.post(url, data, **HX).content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("grammalecte")
class TestReviewPage:
    def test_a_drafts_flag_shows_a_button_per_suggestion(self, world, login):
        student = world.school_class.students.first()
        text = "Les résultats sont encourageant ; les efforts doivent continuer."
        make_draft(world, student, text=text, flags=[])
        draft = Draft.objects.get(student=student)
        # Flags as the worker stores them (services.runner._write_outcomes).
        from dataclasses import asdict

        draft.flags = [asdict(flag) for flag in check_text(text)]
        draft.save()
        page = login(world.teacher).get(review_url(world)).content.decode()
        assert "Accord erroné" in page
        assert f'data-replace-target="text-{student.pk}"' in page
        assert 'data-replace-start="19"' in page
        assert 'data-replace-original="encourageant"' in page
        assert 'data-replace-with="encourageants"' in page
        assert ">encourageants<" in page  # the button shows the suggestion
        # The box keeps the draft's text: nothing is replaced before the teacher's click.
        assert f">{text}</textarea>" in page

    def test_validating_a_grammar_error_asks_for_confirmation_naming_it(self, world, login):
        student = world.school_class.students.first()
        make_draft(world, student)
        client = login(world.teacher)
        body = validate(client, world, student, A_WRONG)
        assert "Valider quand même" in body
        assert "Pour la préposition, écrivez “à”." in body  # Grammalecte's own message
        assert 'data-replace-with="à"' in body  # its suggestion, one click away
        assert f">{A_WRONG}</textarea>".replace("'", "&#x27;") in body
        assert Appreciation.objects.get(student=student).status == Appreciation.Status.GENERATED

        validate(client, world, student, A_WRONG, confirmed="1")
        appreciation = Appreciation.objects.get(student=student)
        assert (appreciation.status, appreciation.text) == (Appreciation.Status.VALIDATED, A_WRONG)

    def test_the_schools_spaces_are_checked_and_kept_at_validation(self, world, login):
        world.school.typographic_spaces = "nbsp"
        world.school.save()
        student = world.school_class.students.first()
        make_draft(world, student)
        client = login(world.teacher)
        body = validate(client, world, student, TYPO)
        assert "Il manque une espace insécable" in body and "Valider quand même" in body
        right = f"Bon trimestre{NBSP}: des efforts à poursuivre{NBSP}!"
        validate(client, world, student, right)
        assert Appreciation.objects.get(student=student).text == right


@pytest.fixture
def no_grammalecte(settings, tmp_path, monkeypatch):
    """A machine without the Debian package: an empty GRAMMALECTE_PATH, nothing importable."""
    settings.GRAMMALECTE_PATH = str(tmp_path)
    for name in [name for name in sys.modules if name.split(".")[0] == "grammalecte"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "dist-packages" not in p])
    grammar.reset()
    yield
    grammar.reset()


@pytest.mark.usefixtures("no_grammalecte")
class TestUnavailable:
    def test_reports_itself_unavailable_logs_once_and_invents_no_flag(self, caplog):
        with caplog.at_level(logging.WARNING, logger="generation.grammar"):
            assert check_text(AGREEMENT) == []
            assert check_text(A_WRONG) == []
        status = grammar.status()
        assert not status.available and "python3-grammalecte" in status.detail
        warnings = [r for r in caplog.records if r.name == "generation.grammar"]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()

    def test_the_other_checks_still_run(self):
        assert [flag.code for flag in check_text(GRADE)] == ["grade"]

    def test_drafting_works_without_it(self):
        backend = ScriptedBackend({"a": [AGREEMENT]})
        [outcome] = draft_with_checks(backend=backend, items=items("a"), max_attempts=3, seed=1)
        assert (outcome.text, outcome.flags, outcome.attempts) == (AGREEMENT, (), 1)

    def test_check_model_says_so(self, settings):
        settings.APPRECIATION_BACKEND = "generation.backends.LocmemBackend"
        out = StringIO()
        call_command("check_model", stdout=out)
        assert "Correcteur grammatical : INDISPONIBLE" in out.getvalue()
        assert "python3-grammalecte" in out.getvalue()


@pytest.mark.usefixtures("grammalecte")
def test_check_model_reports_grammalecte(settings):
    settings.APPRECIATION_BACKEND = "generation.backends.LocmemBackend"
    out = StringIO()
    call_command("check_model", stdout=out)
    assert "Correcteur grammatical : disponible (Grammalecte 2." in out.getvalue()


@pytest.mark.usefixtures("grammalecte")
def test_a_students_name_is_flagged_as_a_name_not_as_a_misspelling():
    text = "Trimestre sérieux pour Maëlys Kerjean, à poursuivre."
    assert [(f.code, f.original) for f in check_text(text)] == [("spelling", "Kerjean")]
    flags = check_text(text, forbidden_names=["Maëlys Kerjean"])
    assert [f.code for f in flags] == ["name"]


@pytest.mark.django_db
@pytest.mark.usefixtures("no_grammalecte")
def test_the_review_page_tells_administrators_only(world, login):
    url = review_url(world)
    assert "Correcteur grammatical indisponible" not in login(world.teacher).get(url).text
    world.teacher.role = world.teacher.Role.SCHOOL_ADMIN
    world.teacher.save()
    page = login(world.teacher).get(url).content.decode()
    assert "Correcteur grammatical indisponible" in page and "python3-grammalecte" in page


@pytest.mark.django_db
@pytest.mark.usefixtures("grammalecte")
def test_the_review_page_says_nothing_when_it_works(world, login):
    world.teacher.role = world.teacher.Role.SCHOOL_ADMIN
    world.teacher.save()
    page = login(world.teacher).get(review_url(world)).content.decode()
    assert "Correcteur grammatical indisponible" not in page


def test_copy_for_pronote_keeps_the_schools_spaces():
    from exports.builders import copy_all_text

    text = f"Bon trimestre{NNBSP}! Des efforts{NBSP}:\nà poursuivre."
    assert copy_all_text([text, ""]) == f"Bon trimestre{NNBSP}! Des efforts{NBSP}: à poursuivre.\n"
