"""The feedback dataset: chat JSONL, preference JSONL, the eltorio Parquet and CSV read back
field by field and by their real readers (TRL's trainers, `datasets`); rows left out (grade,
name, superseded, returned, too long...) and counted; no identifiers, no person or place the
platform knows; the `export_dataset` command and the school admin's download."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from generation.export_selectors import LeftOut, dataset_row_id, dataset_selection
from generation.exports import DATASET_CSV_COLUMNS, DATASET_FORMATS
from generation.models import Appreciation, Draft, Feedback, GenerationJob
from generation.prompts import PromptInputs, build_messages
from tests.factories import StudentFactory

INPUTS = {
    "subject": "Histoire-Géographie",
    "level": "Seconde",
    "trimester": 2,
    "repeating": True,
    "averages": [11.0, 12.5, None],
    "behaviour": 7.0,
    "participation": 6.5,
    "work": 8.0,
}
PROMPT = build_messages(
    PromptInputs(
        subject_name="Histoire-Géographie",
        trimester=2,
        averages=(11, 12.5, None),
        behaviour=7,
        participation=6.5,
        work=8,
    )
)
DRAFT = "Élève sérieux, des efforts à poursuivre."
FINAL = "Élève sérieux et investi, des efforts à poursuivre à l'oral."
# What the adapter was trained with (Unsloth's template): the default of APPRECIATION_CHAT_DATE.
CHAT_DATE = "26 July 2024"
KWARGS = {"date_string": CHAT_DATE}


def make_feedback(
    world,
    *,
    student=None,
    assignment=None,
    final_text=FINAL,
    draft_text=DRAFT,
    edited=True,
    prompt_messages=PROMPT,
    inputs=None,
    status=Appreciation.Status.VALIDATED,
    test_model=False,
    appreciation=None,
) -> Feedback:
    """A validation as services.draft_validate records it, written directly."""
    assignment = assignment or world.assignment
    school_class = assignment.school_class
    term = world.term if assignment != world.foreign_assignment else world.foreign_term
    if appreciation is None:
        student = student or StudentFactory(school_class=school_class, last_name="Zorglub")
        appreciation = Appreciation.objects.create(
            student=student, subject=assignment.subject, term=term, status=status, text=final_text
        )
    draft = None
    if prompt_messages:
        job = GenerationJob.objects.create(
            assignment=assignment, term=term, status=GenerationJob.Status.SUCCEEDED
        )
        draft = Draft.objects.create(
            job=job,
            student=appreciation.student,
            subject=assignment.subject,
            term=term,
            status=Draft.Status.GENERATED,
            prompt_messages=prompt_messages,
            prompt_version="test",
            text=draft_text,
            is_test_model=test_model,
        )
    return Feedback.objects.create(
        appreciation=appreciation,
        draft=draft,
        school=school_class.school,
        validated_by=assignment.teacher,
        draft_text=draft_text,
        final_text=final_text,
        edited=edited,
        prompt_messages=prompt_messages or [],
        inputs=dict(INPUTS if inputs is None else inputs),
    )


def read_jsonl(content: bytes) -> list[dict]:
    text = content.decode("utf-8")
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def read_dataset_csv(content: bytes) -> list[dict]:
    assert not content.startswith(b"\xef\xbb\xbf")
    reader = csv.reader(io.StringIO(content.decode("utf-8")))
    header = next(reader)
    assert header == list(DATASET_CSV_COLUMNS)
    return [dict(zip(header, row, strict=True)) for row in reader]


def export(fmt: str, **kwargs) -> bytes:
    out = io.StringIO()
    call_command("export_dataset", "--format", fmt, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue().encode("utf-8")


# --- Each format, field by field ---------------------------------------------------------------


def test_chat_jsonl_is_the_prompt_as_sent_and_the_validated_text(world):

    item = make_feedback(world)
    rows = read_jsonl(export("chat-jsonl"))

    assert rows == [
        {
            "id": dataset_row_id(feedback_pk=item.pk),
            "messages": [*PROMPT, {"role": "assistant", "content": FINAL}],
            "chat_template_kwargs": KWARGS,
        }
    ]
    assert [m["role"] for m in rows[0]["messages"]] == ["system", "user", "assistant"]
    assert rows[0]["messages"][0]["content"] == PROMPT[0]["content"]
    assert rows[0]["messages"][1]["content"] == PROMPT[1]["content"]


def test_preference_jsonl_prefers_the_teachers_text_to_the_draft(world):
    item = make_feedback(world)

    rows = read_jsonl(export("preference-jsonl"))

    assert rows == [
        {
            "id": dataset_row_id(feedback_pk=item.pk, draft_pk=None),
            "prompt": PROMPT,
            "chosen": [{"role": "assistant", "content": FINAL}],
            "rejected": [{"role": "assistant", "content": DRAFT}],
            "chat_template_kwargs": KWARGS,
        }
    ]


def test_appreciation_csv_has_the_eltorio_columns(world):
    item = make_feedback(world)
    make_feedback(
        world,
        final_text="Bon début d'année, une participation à développer.",
        inputs={**INPUTS, "trimester": 1, "repeating": False, "averages": [9.75, None, None]},
    )

    rows = read_dataset_csv(export("appreciation-csv"))

    assert rows[0] == {
        "Id": str(dataset_row_id(feedback_pk=item.pk)),
        "redoublant": "1",
        "matière": "Histoire-Géographie",
        "trimestre": "2",
        "note 1er trimestre": "11",
        "note 2ème trimestre": "12.5",
        "note 3ème trimestre": "",
        "comportement 0-10": "7",
        "participation 0-10": "6.5",
        "travail 0-10": "8",
        "commentaire": FINAL,
    }
    assert rows[1]["redoublant"] == "0"
    assert rows[1]["trimestre"] == "1"
    assert [rows[1][f"note {n} trimestre"] for n in ("1er", "2ème", "3ème")] == ["9.75", "", ""]
    assert rows[1]["commentaire"] == "Bon début d'année, une participation à développer."
    # The Id reveals no database id, is an int64 like the dataset's, and is stable from one
    # export to the next.
    assert 0 <= int(rows[0]["Id"]) < 2**63 and rows[0]["Id"] != str(item.pk)
    assert rows[0]["Id"] != rows[1]["Id"]
    assert read_dataset_csv(export("appreciation-csv"))[0]["Id"] == rows[0]["Id"]


def test_appreciation_csv_neutralises_a_hostile_text(world):
    # The CSV is for a spreadsheet: the guard stays there (the Parquet file is raw text).
    make_feedback(world, final_text='=HYPERLINK("http://evil.example")')
    rows = read_dataset_csv(export("appreciation-csv"))
    assert rows[0]["commentaire"] == '\'=HYPERLINK("http://evil.example")'


def test_no_names_and_no_identifiers_of_students_or_teachers(world):
    student = StudentFactory(
        school_class=world.school_class,
        last_name="Zébulon",
        first_name="Anatole",
        external_id="zebulon.anatole",
    )
    item = make_feedback(world, student=student)
    teacher = world.assignment.teacher
    for fmt in ("chat-jsonl", "preference-jsonl", "appreciation-csv"):
        content = export(fmt).decode("utf-8")
        assert FINAL in content
        for secret in (
            "Zébulon",
            "Anatole",
            "zebulon.anatole",
            teacher.username,
            teacher.last_name,
            world.school.name,
        ):
            assert secret not in content, (fmt, secret)
        assert f'"{item.pk}"' not in content
        if fmt.endswith("jsonl"):
            keys = {key for row in read_jsonl(content.encode()) for key in row}
            assert keys <= {"id", "messages", "prompt", "chosen", "rejected", "chat_template_kwargs"}


# --- Rows left out, and why ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Un trimestre à 12/20, des efforts à poursuivre.",
        "Moyenne de 14,5 : bon trimestre.",
        "Quinze sur vingt, un excellent trimestre.",
    ],
)
def test_rows_quoting_a_grade_are_left_out_in_every_format(world, text):
    make_feedback(world, final_text=text)
    make_feedback(world)
    for fmt in ("chat-jsonl", "preference-jsonl", "appreciation-csv"):
        selection = dataset_selection(fmt=fmt)
        assert [row.final_text for row in selection.rows] == [FINAL]
        assert selection.left_out == {LeftOut.GRADE: 1}


def test_term_ordinals_are_not_grades(world):
    make_feedback(world, final_text="Des progrès depuis le 1er trimestre, à confirmer au 3e.")
    assert len(dataset_selection(fmt="chat-jsonl").rows) == 1


def test_rows_quoting_a_student_name_are_left_out(world):
    student = StudentFactory(school_class=world.school_class, last_name="Dubreuil")
    make_feedback(world, student=student, final_text="Dubreuil progresse, à poursuivre.")
    # The draft (the rejected answer) is checked too in the preference format.
    make_feedback(world, draft_text="Bon travail de Dubreuil.")
    assert dataset_selection(fmt="chat-jsonl").left_out == {LeftOut.NAME: 1}
    assert dataset_selection(fmt="preference-jsonl").left_out == {LeftOut.NAME: 2}


def test_only_the_latest_validation_of_an_appreciation_counts(world):
    first = make_feedback(world, final_text="Première version du texte.")
    latest = make_feedback(world, appreciation=first.appreciation)
    selection = dataset_selection(fmt="chat-jsonl")
    assert [row.row_id for row in selection.rows] == [dataset_row_id(feedback_pk=latest.pk)]
    assert selection.left_out == {LeftOut.SUPERSEDED: 1}


def test_a_returned_appreciation_is_left_out(world):
    make_feedback(world, status=Appreciation.Status.RETURNED)
    assert dataset_selection(fmt="chat-jsonl").left_out == {LeftOut.RETURNED: 1}


def test_a_text_written_without_draft_is_a_chat_row_but_no_preference(world):
    # The prompt is the one of the validated inputs: a teacher's own text answers it too.
    make_feedback(world, prompt_messages=None, draft_text="")
    assert [row.prompt_messages for row in dataset_selection(fmt="chat-jsonl").rows] == [PROMPT]
    assert dataset_selection(fmt="preference-jsonl").left_out == {LeftOut.NO_PROMPT: 1}
    assert len(dataset_selection(fmt="appreciation-csv").rows) == 1


def test_preferences_need_an_edited_draft_from_the_real_model(world):
    make_feedback(world, draft_text=FINAL, edited=False)
    make_feedback(world, test_model=True)
    make_feedback(world)
    selection = dataset_selection(fmt="preference-jsonl")
    assert len(selection.rows) == 1
    assert selection.left_out == {LeftOut.NOT_EDITED: 1, LeftOut.TEST_MODEL: 1}
    # Validated as is: still a good chat example.
    assert len(dataset_selection(fmt="chat-jsonl").rows) == 3


def test_the_csv_needs_complete_inputs(world):
    make_feedback(world, inputs={**INPUTS, "averages": [11.0, None, None]})
    make_feedback(world, inputs={**INPUTS, "work": None})
    make_feedback(world, inputs={})
    selection = dataset_selection(fmt="appreciation-csv")
    assert selection.rows == []
    assert selection.left_out == {LeftOut.INCOMPLETE: 3}


def test_erased_students_feedback_stays_pseudonymous_and_exportable(world):
    item = make_feedback(world)
    item.appreciation.student.delete()  # erasure: the link is cut (SET_NULL)
    item.refresh_from_db()
    assert item.appreciation_id is None
    assert [row.final_text for row in dataset_selection(fmt="chat-jsonl").rows] == [FINAL]


def test_selection_scopes_to_a_school_and_a_date(world):
    old = make_feedback(world, final_text="Un texte plus ancien, sérieux.")
    Feedback.objects.filter(pk=old.pk).update(validated_at=timezone.now() - timedelta(days=30))
    make_feedback(world)
    make_feedback(world, assignment=world.foreign_assignment, final_text="Autre établissement.")

    assert len(dataset_selection(fmt="chat-jsonl").rows) == 3
    mine = dataset_selection(fmt="chat-jsonl", school_id=world.school.pk)
    assert [row.final_text for row in mine.rows] == ["Un texte plus ancien, sérieux.", FINAL]
    recent = dataset_selection(
        fmt="chat-jsonl", school_id=world.school.pk, since=timezone.now() - timedelta(days=1)
    )
    assert [row.final_text for row in recent.rows] == [FINAL]


def test_dataset_selection_queries_do_not_grow(world, django_assert_max_num_queries):
    for _ in range(15):
        make_feedback(world)
    make_feedback(world, assignment=world.foreign_assignment)
    # Feedback, latest validations, students, staff, schools, discarded drafts.
    with django_assert_max_num_queries(6):
        selection = dataset_selection(fmt="preference-jsonl")
    assert len(selection.rows) == 16


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="Unknown dataset format"):
        dataset_selection(fmt="parquet")


# --- The command ---------------------------------------------------------------------------------


def test_command_writes_the_file_and_says_what_it_left_out(world, tmp_path):
    make_feedback(world)
    make_feedback(world, final_text="Trimestre à 8/20, des difficultés.")
    make_feedback(world, draft_text=FINAL, edited=False)
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "pref.jsonl"

    call_command(
        "export_dataset", "--format", "preference-jsonl", "-o", str(target), stdout=out, stderr=err
    )

    assert len(read_jsonl(target.read_bytes())) == 1
    report = out.getvalue()
    assert f"Wrote 1 row(s) (preference-jsonl, all schools) to {target}." in report
    assert "Left out 2 row(s):" in report
    assert "  1: the final text quotes a grade" in report
    assert "  1: draft validated as is (no preference)" in report
    assert err.getvalue() == ""


def test_command_to_stdout_reports_on_stderr(world):
    make_feedback(world)
    out, err = io.StringIO(), io.StringIO()
    call_command("export_dataset", "--format", "appreciation-csv", stdout=out, stderr=err)
    assert len(read_dataset_csv(out.getvalue().encode())) == 1
    assert "Wrote 1 row(s) (appreciation-csv, all schools) to standard output." in err.getvalue()
    assert "Left out no row." in err.getvalue()


def test_command_filters_by_school_and_since(world, tmp_path):
    old = make_feedback(world, final_text="Un texte plus ancien, sérieux.")
    Feedback.objects.filter(pk=old.pk).update(validated_at=timezone.now() - timedelta(days=30))
    make_feedback(world)
    make_feedback(world, assignment=world.foreign_assignment, final_text="Autre établissement.")
    since = (timezone.localdate() - timedelta(days=2)).isoformat()
    target = tmp_path / "chat.jsonl"
    out = io.StringIO()

    call_command(
        "export_dataset",
        "--format",
        "chat-jsonl",
        "--school",
        str(world.school.pk),
        "--since",
        since,
        "--output",
        str(target),
        stdout=out,
    )

    rows = read_jsonl(target.read_bytes())
    assert [row["messages"][-1]["content"] for row in rows] == [FINAL]
    assert f"school {world.school.pk}, since " in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "hier"], "expected YYYY-MM-DD"),
        (["--school", "999999"], "No school with id 999999"),
    ],
)
def test_command_refuses_bad_arguments(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_dataset", "--format", "chat-jsonl", *args, stdout=io.StringIO())


def test_command_refuses_an_unknown_format(db):
    with pytest.raises(CommandError):
        call_command("export_dataset", "--format", "parquet", stdout=io.StringIO())


# --- The school admin's download ---------------------------------------------------------------


def dataset_url(fmt: str) -> str:
    return reverse("exports:dataset_file", args=[fmt])


@pytest.mark.parametrize("who", ["teacher", "head", "other_teacher", "foreign_teacher"])
def test_only_school_admins_download_the_dataset(world, login, who):
    assert login(getattr(world, who)).get(dataset_url("chat-jsonl")).status_code == 404


def test_admin_downloads_their_schools_dataset_only(world, login, caplog):
    make_feedback(world)
    make_feedback(world, final_text="Trimestre à 8/20, des difficultés.")
    make_feedback(world, assignment=world.foreign_assignment, final_text="Autre établissement.")

    with caplog.at_level(logging.INFO, logger="generation.export_views"):
        response = login(world.admin).get(dataset_url("chat-jsonl"))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="retours-chat-jsonl-')
    rows = read_jsonl(response.content)
    assert [row["messages"][-1]["content"] for row in rows] == [FINAL]
    from audit.models import AuditEvent

    event = AuditEvent.objects.get(event=AuditEvent.Event.DATASET_DOWNLOAD)
    assert event.actor == world.admin
    assert (event.detail["rows"], event.detail["left_out"]) == (1, 1)

    csv_rows = read_dataset_csv(login(world.admin).get(dataset_url("appreciation-csv")).content)
    assert [row["commentaire"] for row in csv_rows] == [FINAL]


def test_admin_download_filters_by_date(world, login):
    old = make_feedback(world, final_text="Un texte plus ancien, sérieux.")
    Feedback.objects.filter(pk=old.pk).update(validated_at=timezone.now() - timedelta(days=30))
    make_feedback(world)
    since = (timezone.localdate() - timedelta(days=2)).isoformat()
    client = login(world.admin)

    rows = read_jsonl(client.get(dataset_url("chat-jsonl"), {"depuis": since}).content)
    assert [row["messages"][-1]["content"] for row in rows] == [FINAL]
    response = client.get(dataset_url("chat-jsonl"), {"depuis": "pas une date"})
    assert response.status_code == 302
    assert response.url == reverse("exports:index")


def test_admin_index_shows_rows_and_reasons(world, login):
    make_feedback(world)
    make_feedback(world, final_text="Trimestre à 8/20, des difficultés.")
    page = login(world.admin).get(reverse("exports:index")).content.decode()
    section = page[page.index('id="dataset"') :]
    assert "1 : le texte final cite une note" in section.replace("&#x27;", "'")
    assert dataset_url("preference-jsonl") in section


def test_rows_scrubbed_by_an_erasure_are_left_out(world):
    from classes.student_data import PLACEHOLDER
    from generation.export_selectors import LeftOut, dataset_selection
    from generation.models import Feedback

    Feedback.objects.create(
        school=world.school,
        draft_text="Trimestre correct.",
        final_text=f"{PLACEHOLDER} a fourni un travail régulier.",
        edited=True,
        prompt_messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        inputs={},
    )
    selection = dataset_selection(fmt="chat-jsonl", school_id=world.school.pk)
    assert selection.rows == []
    assert selection.left_out[LeftOut.NAME] == 1
