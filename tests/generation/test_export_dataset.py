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

from exports.builders import DATASET_CSV_COLUMNS, DATASET_FORMATS, dataset_csv
from exports.dataset import LeftOut, dataset_row_id, dataset_selection
from generation.models import Appreciation, Draft, Feedback, GenerationJob
from generation.prompts import PromptInputs, build_messages
from tests.factories import (
    AppreciationFactory,
    DraftFactory,
    FeedbackFactory,
    GenerationJobFactory,
    StudentFactory,
)

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
        appreciation = AppreciationFactory(
            student=student, subject=assignment.subject, term=term, status=status, text=final_text
        )
    draft = None
    if prompt_messages:
        job = GenerationJobFactory(
            assignment=assignment, term=term, status=GenerationJob.Status.SUCCEEDED
        )
        draft = DraftFactory(
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
    return FeedbackFactory(
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
            assert keys <= {
                "id",
                "messages",
                "prompt",
                "chosen",
                "rejected",
                "chat_template_kwargs",
            }


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


def test_a_newcomers_row_leaves_the_earlier_average_empty(world):
    """A student who joined mid-year was drafted with N/A for term 1: the dataset, like
    `eltorio/appreciation`, leaves that note empty rather than leaving the row out."""
    make_feedback(world, inputs={**INPUTS, "averages": [None, 12.5, None]})
    selection = dataset_selection(fmt="appreciation-csv")
    assert selection.left_out == {}
    rows = list(csv.reader(io.StringIO(dataset_csv(selection.rows).decode("utf-8"))))
    assert rows[1][4:7] == ["", "12.5", ""]


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

    with caplog.at_level(logging.INFO, logger="exports.views"):
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
    from exports.dataset import LeftOut, dataset_selection
    from generation.models import Feedback
    from privacy.student_data import PLACEHOLDER

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


# --- The prompt trained on is the prompt sent (issue 10) ----------------------------------------


def write_export(tmp_path, fmt: str, name: str | None = None):
    target = tmp_path / (name or f"{fmt}.{'parquet' if fmt.endswith('parquet') else 'x'}")
    call_command("export_dataset", "--format", fmt, "-o", str(target), stdout=io.StringIO())
    return target


def load_json_rows(path, tmp_path):
    """The file as TRL's users load it: the Hub's `datasets` JSON reader."""
    from datasets import load_dataset

    return load_dataset(
        "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache")
    )


def backend_prompt_ids(tiny_model_dirs, messages):
    """What the platform's backend feeds the model for these messages (its own code)."""
    from worker.backends.transformers import TransformersBackend, prompt_token_ids

    base, adapter = tiny_model_dirs
    backend = TransformersBackend(base_model=str(base), adapter=str(adapter), device="cpu")
    backend.load()
    return backend, prompt_token_ids(backend.tokenizer, messages, date_string=backend.chat_date)


def test_the_tiny_tokenizer_renders_the_date_it_is_given(tiny_model_dirs):
    # The test below proves nothing unless the template writes date_string, like Llama 3's.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dirs[1])
    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, date_string="03 Mar 2031")
    assert "\nToday Date: 03 Mar 2031\n\n" in text


def test_trl_sft_trains_on_the_exact_tokens_the_backend_sends(world, tmp_path, tiny_model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer
    from trl.data_utils import maybe_apply_chat_template

    make_feedback(world)
    make_feedback(world, final_text="Bon trimestre, une participation à développer.")
    dataset = load_json_rows(write_export(tmp_path, "chat-jsonl"), tmp_path)
    base, adapter = tiny_model_dirs
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    backend, sent = backend_prompt_ids(tiny_model_dirs, PROMPT)
    assert backend.chat_date == CHAT_DATE

    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        args=SFTConfig(
            output_dir=str(tmp_path / "sft"),
            report_to=[],
            use_cpu=True,
            max_steps=1,
            per_device_train_batch_size=1,
            save_strategy="no",
        ),
        train_dataset=dataset,
        processing_class=tokenizer,
    )

    finals = [FINAL, "Bon trimestre, une participation à développer."]
    for example, final in zip(trainer.train_dataset, finals, strict=True):
        ids = example["input_ids"]
        # The context the model is trained in is, token for token, the one it is given.
        assert ids[: len(sent)] == sent
        assert tokenizer.decode(ids[len(sent) :]) == final + "<|eot_id|>"
    # And the text TRL renders starts with the backend's, byte for byte.
    rendered = maybe_apply_chat_template(dataset[0], tokenizer)["text"]
    assert rendered.startswith(backend.render_prompt(PROMPT))
    assert f"\nToday Date: {CHAT_DATE}\n\n" in rendered
    # The extra columns (id, chat_template_kwargs) do not stop a training step.
    assert trainer.train().global_step == 1


def test_trl_dpo_trains_on_the_exact_tokens_the_backend_sends(world, tmp_path, tiny_model_dirs):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer
    from trl.data_utils import maybe_apply_chat_template

    make_feedback(world)
    dataset = load_json_rows(write_export(tmp_path, "preference-jsonl"), tmp_path)
    base, adapter = tiny_model_dirs
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    backend, sent = backend_prompt_ids(tiny_model_dirs, PROMPT)

    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        args=DPOConfig(
            output_dir=str(tmp_path / "dpo"),
            report_to=[],
            use_cpu=True,
            max_steps=1,
            per_device_train_batch_size=1,
            save_strategy="no",
        ),
        train_dataset=dataset,
        processing_class=tokenizer,
    )

    (example,) = trainer.train_dataset
    assert example["prompt_ids"] == sent
    assert tokenizer.decode(example["chosen_ids"]) == FINAL + "<|eot_id|>"
    assert tokenizer.decode(example["rejected_ids"]) == DRAFT + "<|eot_id|>"
    rendered = maybe_apply_chat_template(dataset[0], tokenizer)
    assert rendered["prompt"] == backend.render_prompt(PROMPT)
    assert trainer.train().global_step == 1


def test_the_chat_date_is_the_setting(world, settings):
    settings.APPRECIATION_CHAT_DATE = "01 Sep 2026"
    make_feedback(world)
    for fmt in ("chat-jsonl", "preference-jsonl"):
        (row,) = read_jsonl(export(fmt))
        assert row["chat_template_kwargs"] == {"date_string": "01 Sep 2026"}


# --- A row's prompt is the one of the inputs the teacher validated ------------------------------


def test_rows_use_the_prompt_of_the_validated_inputs_not_the_drafts(world):
    """The draft was prompted with a T2 average of 14.33; the teacher changed it to 19.5, then
    validated a text written for 19.5."""
    old_inputs = {**INPUTS, "averages": [11.0, 14.33, None]}
    new_inputs = {**INPUTS, "averages": [11.0, 19.5, None]}
    old_prompt = build_messages(
        PromptInputs("Histoire-Géographie", 2, (11, 14.33, None), 7, 6.5, 8)
    )
    new_prompt = build_messages(PromptInputs("Histoire-Géographie", 2, (11, 19.5, None), 7, 6.5, 8))
    assert old_prompt != new_prompt and old_inputs != new_inputs
    make_feedback(world, prompt_messages=old_prompt, inputs=new_inputs)

    (chat,) = read_jsonl(export("chat-jsonl"))
    assert chat["messages"][:2] == new_prompt
    assert "19.5" in chat["messages"][1]["content"]
    assert "14.33" not in json.dumps(chat)
    # The draft answered other inputs: no preference pair against it.
    selection = dataset_selection(fmt="preference-jsonl")
    assert selection.rows == []
    assert selection.left_out == {LeftOut.STALE_PROMPT: 1}


def test_a_validation_records_the_current_inputs_and_the_review_flags_a_stale_draft(world, login):
    from generation import services
    from generation.selectors import class_readiness, review_rows
    from tests.factories import TermAssessmentFactory

    student = StudentFactory(school_class=world.school_class, last_name="Zorglub")
    TermAssessmentFactory(
        student=student, term=world.terms[0], subject=world.assignment.subject, average="11"
    )
    assessment = TermAssessmentFactory(
        student=student, term=world.term, subject=world.assignment.subject, average="14.33"
    )
    (readiness,) = class_readiness(assignment=world.assignment, term=world.term, students=[student])
    job = GenerationJob.objects.create(
        assignment=world.assignment, term=world.term, status=GenerationJob.Status.SUCCEEDED
    )
    draft = Draft.objects.create(
        job=job,
        student=student,
        subject=world.assignment.subject,
        term=world.term,
        status=Draft.Status.GENERATED,
        prompt_messages=build_messages(readiness.inputs),
        prompt_version="test",
        text=DRAFT,
    )
    appreciation = services.appreciation_propose(draft=draft)

    def review_row():
        rows = review_rows(assignment=world.assignment, term=world.term, students=[student])
        return rows[0]

    assert review_row().stale_draft is False
    assessment.average = 19.5
    assessment.save()
    assert review_row().stale_draft is True
    page = login(world.teacher).get(
        reverse("generation:review", args=[world.assignment.pk, world.term.pk])
    )
    assert '<p class="stale" role="note">Ce brouillon a été rédigé avec d\'anciennes saisies' in (
        page.content.decode()
    )

    services.draft_validate(
        assignment=world.assignment,
        term=world.term,
        student=student,
        user=world.teacher,
        text=FINAL,
        version=appreciation.version,
    )
    (chat,) = dataset_selection(fmt="chat-jsonl").rows
    assert "19.5 de moyenne ce trimestre et 11 au premier" in chat.prompt_messages[1]["content"]
    assert dataset_selection(fmt="preference-jsonl").left_out == {LeftOut.STALE_PROMPT: 1}


# --- Drafts the teacher threw away are rejected examples -----------------------------------------


def test_regenerated_and_set_aside_drafts_are_preference_pairs(world):
    from generation import services

    item = make_feedback(world)  # the teacher edited draft D1 into FINAL
    appreciation = item.appreciation

    def new_draft(text, prompt=PROMPT, **options):
        job = GenerationJob.objects.create(
            assignment=world.assignment, term=world.term, status=GenerationJob.Status.SUCCEEDED
        )
        return Draft.objects.create(
            job=job,
            student=appreciation.student,
            subject=appreciation.subject,
            term=appreciation.term,
            status=Draft.Status.GENERATED,
            prompt_messages=prompt,
            prompt_version="test",
            text=text,
            **options,
        )

    # « Régénérer »: offered beside the validated text, then « Garder mon texte ».
    set_aside = new_draft("Un trimestre correct dans l'ensemble.")
    appreciation = services.appreciation_propose(draft=set_aside)
    assert appreciation.offered_draft == set_aside
    services.appreciation_dismiss_offer(appreciation=appreciation, user=world.teacher)
    # The same text again: one example, not two.
    new_draft("Un trimestre correct dans l'ensemble.")
    # A draft regenerated before the inputs changed: it answers another prompt.
    other_prompt = build_messages(PromptInputs("Histoire-Géographie", 2, (11, 9, None), 7, 6.5, 8))
    new_draft("Des difficultés à surmonter.", prompt=other_prompt)
    # A test-model draft: random text, no example.
    new_draft("xq zz blorp", is_test_model=True)
    # Still offered, not decided yet: no example either.
    pending = new_draft("Un bon trimestre.")
    services.appreciation_propose(draft=pending)

    selection = dataset_selection(fmt="preference-jsonl")

    assert [(row.final_text, row.rejected_text) for row in selection.rows] == [
        (FINAL, DRAFT),
        (FINAL, "Un trimestre correct dans l'ensemble."),
    ]
    assert all(row.prompt_messages == PROMPT for row in selection.rows)
    assert selection.left_out == {
        LeftOut.STALE_PROMPT: 1,
        LeftOut.TEST_MODEL: 1,
        LeftOut.DUPLICATE: 1,
    }
    ids = [row.row_id for row in selection.rows]
    assert len(set(ids)) == 2
    assert ids == [row.row_id for row in dataset_selection(fmt="preference-jsonl").rows]


def test_a_draft_replaced_before_validation_is_a_rejected_example(world):
    from generation import services

    student = StudentFactory(school_class=world.school_class, last_name="Zorglub")
    drafts = []
    for text in ("Premier brouillon du trimestre.", "Second brouillon du trimestre."):
        job = GenerationJob.objects.create(
            assignment=world.assignment, term=world.term, status=GenerationJob.Status.SUCCEEDED
        )
        drafts.append(
            Draft.objects.create(
                job=job,
                student=student,
                subject=world.assignment.subject,
                term=world.term,
                status=Draft.Status.GENERATED,
                prompt_messages=PROMPT,
                prompt_version="test",
                text=text,
            )
        )
        appreciation = services.appreciation_propose(draft=drafts[-1])
    assert appreciation.draft == drafts[1]
    make_feedback(world, appreciation=appreciation, draft_text=drafts[1].text, prompt_messages=None)
    Feedback.objects.update(draft=drafts[1], prompt_messages=PROMPT)
    rejected = [row.rejected_text for row in dataset_selection(fmt="preference-jsonl").rows]
    assert rejected == ["Second brouillon du trimestre.", "Premier brouillon du trimestre."]


# --- The model's own rules -----------------------------------------------------------------------


def test_texts_over_forty_words_are_left_out(world):
    long_text = " ".join(["Travail sérieux et régulier"] * 11)  # 44 words
    make_feedback(world, final_text=long_text)
    make_feedback(world, final_text=" ".join(["Travail sérieux et régulier"] * 10))  # 40
    for fmt in DATASET_FORMATS:
        selection = dataset_selection(fmt=fmt)
        assert len(selection.rows) == 1, fmt
        assert selection.left_out == {LeftOut.TOO_LONG: 1}, fmt


def test_every_row_has_a_stable_int64_id_in_every_format(world, tmp_path):
    import pyarrow.parquet as pq

    items = [make_feedback(world), make_feedback(world, final_text="Bon trimestre.")]
    expected = [dataset_row_id(feedback_pk=item.pk) for item in items]
    assert all(isinstance(i, int) and 0 <= i < 2**63 for i in expected)
    assert [row["id"] for row in read_jsonl(export("chat-jsonl"))] == expected
    assert [row["id"] for row in read_jsonl(export("preference-jsonl"))] == expected
    assert [int(row["Id"]) for row in read_dataset_csv(export("appreciation-csv"))] == expected
    table = pq.read_table(write_export(tmp_path, "appreciation-parquet"))
    assert table.column("Id").to_pylist() == expected
    # The same feedback, the same id, export after export.
    assert [row["id"] for row in read_jsonl(export("chat-jsonl"))] == expected


# --- The eltorio Parquet file ---------------------------------------------------------------------


def eltorio_features():
    from datasets import Features, Value

    return Features(
        {
            "Id": Value("int64"),
            "redoublant": Value("int64"),
            "matière": Value("string"),
            "trimestre": Value("int64"),
            "note 1er trimestre": Value("float64"),
            "note 2ème trimestre": Value("float64"),
            "note 3ème trimestre": Value("float64"),
            "comportement 0-10": Value("float64"),
            "participation 0-10": Value("float64"),
            "travail 0-10": Value("float64"),
            "commentaire": Value("string"),
        }
    )


def test_parquet_appends_to_eltorio_appreciation(world, tmp_path):
    from datasets import Dataset, concatenate_datasets, load_dataset

    hostile = '=HYPERLINK("http://evil.example") reste un texte.'
    make_feedback(world)
    make_feedback(
        world,
        final_text=hostile,
        inputs={**INPUTS, "trimester": 1, "repeating": False, "averages": [9.75, None, None]},
    )
    path = write_export(tmp_path, "appreciation-parquet", "rows.parquet")

    loaded = load_dataset(
        "parquet",
        data_files=str(path),
        split="train",
        features=eltorio_features(),
        cache_dir=str(tmp_path / "hf-cache"),
    )
    # A few rows shaped like eltorio/appreciation's own.
    original = Dataset.from_dict(
        {
            "Id": [1, 2],
            "redoublant": [0, 1],
            "matière": ["Histoire-Géographie", None],
            "trimestre": [1, 3],
            "note 1er trimestre": [12.0, 8.5],
            "note 2ème trimestre": [None, 9.0],
            "note 3ème trimestre": [None, 10.5],
            "comportement 0-10": [8.0, 6.0],
            "participation 0-10": [7.0, 5.0],
            "travail 0-10": [9.0, 4.0],
            "commentaire": ["Très bon début d'année.", "Des progrès à confirmer."],
        },
        features=eltorio_features(),
    )
    combined = concatenate_datasets([original, loaded])

    assert combined.num_rows == 4
    assert list(loaded.column_names) == list(DATASET_CSV_COLUMNS)
    # Raw text, as the teachers validated it: no spreadsheet guard.
    assert loaded["commentaire"] == [FINAL, hostile]
    first, second = loaded[0], loaded[1]
    assert (first["redoublant"], first["trimestre"]) == (1, 2)
    assert (first["note 1er trimestre"], first["note 2ème trimestre"]) == (11.0, 12.5)
    assert first["note 3ème trimestre"] is None
    assert (first["comportement 0-10"], first["participation 0-10"]) == (7.0, 6.5)
    assert second["note 2ème trimestre"] is None and second["redoublant"] == 0


def test_parquet_needs_an_output_file(world):
    make_feedback(world)
    with pytest.raises(CommandError, match="binary file"):
        call_command("export_dataset", "--format", "appreciation-parquet", stdout=io.StringIO())


def test_admin_downloads_the_parquet_file(world, login):
    import pyarrow.parquet as pq

    make_feedback(world)
    response = login(world.admin).get(dataset_url("appreciation-parquet"))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(response.content)).column("commentaire").to_pylist() == [FINAL]


# --- No person or place the platform knows --------------------------------------------------------


def test_no_person_or_place_the_platform_knows_reaches_any_file(world, tmp_path):
    """Names planted in every field the platform holds appear in no dataset file."""
    import pyarrow.parquet as pq

    from classes.models import SchoolClass

    school = world.school
    school.name = "Lycée Émile-Zola"
    school.city = "Villeurbanne"
    school.uai = "0690001Z"
    school.save()
    world.teacher.last_name = "Lévêque"
    world.teacher.save()
    world.head.first_name, world.head.last_name = "Gwenaëlle", "Kerbrat"
    world.head.save()
    world.admin.username = "intendance.marchal"
    world.admin.email = "direction@zola.example"
    world.admin.save()
    other_class = SchoolClass.objects.get(school=school, name="1ère 1")
    StudentFactory(school_class=other_class, first_name="Océane", last_name="Lepetit-Durand")

    planted = {
        "Entretien à prévoir avec Mme Lévêque et la CPE du lycée Émile-Zola.": "staff_or_place",
        "Un projet avec Mme Kerbrat à poursuivre.": "staff_or_place",
        "Voir avec Gwenaëlle pour l'oral.": "staff_or_place",
        "Dossier suivi par intendance.marchal, à poursuivre.": "staff_or_place",
        "Écrire à direction@zola.example pour le stage.": "staff_or_place",
        "Une sortie à Villeurbanne très réussie.": "staff_or_place",
        "Travaille bien avec Océane, à poursuivre.": "name",
        "Un binôme avec Lepetit-Durand efficace.": "name",
    }
    clean = ("calme", "posé", "assidu", "attentif", "motivé", "appliqué", "curieux", "soigneux")
    for text, word in zip(planted, clean, strict=True):
        # In the final text, and in the rejected draft of a clean text.
        make_feedback(world, final_text=text)
        make_feedback(world, final_text=f"Élève {word}, à poursuivre.", draft_text=text)
    make_feedback(world)

    files = {
        fmt: write_export(tmp_path, fmt, f"data.{fmt}").read_bytes() for fmt in DATASET_FORMATS
    }
    table = pq.read_table(io.BytesIO(files["appreciation-parquet"]))
    files["parquet-read-back"] = json.dumps(table.to_pylist(), ensure_ascii=False).encode()

    for fmt, content in files.items():
        assert FINAL.encode() in content, fmt
        for secret in (
            "Lévêque",
            "Émile-Zola",
            "Villeurbanne",
            "0690001Z",
            "Kerbrat",
            "Gwenaëlle",
            "intendance.marchal",
            "direction@zola",
            "Océane",
            "Lepetit-Durand",
        ):
            assert secret.encode() not in content, (fmt, secret)
    chat = dataset_selection(fmt="chat-jsonl")
    assert chat.left_out == {LeftOut.STAFF_OR_PLACE: 6, LeftOut.NAME: 2}
    preference = dataset_selection(fmt="preference-jsonl")
    assert preference.left_out == {LeftOut.STAFF_OR_PLACE: 12, LeftOut.NAME: 4}
    assert [row.rejected_text for row in preference.rows] == [DRAFT]


def test_a_lycee_or_a_college_alone_names_no_one(world):
    world.school.name = "Lycée Émile-Zola"
    world.school.save()
    make_feedback(world, final_text="Un bel engagement au lycée, à poursuivre au collège.")
    assert dataset_selection(fmt="chat-jsonl").left_out == {}
