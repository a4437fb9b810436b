"""The training rows: the dataset export's rows of the opted-in schools only, split by student
AND teacher (no one on two sides), deterministic, snapshotted; the original dataset's local
copy (Parquet, CSV) in the train split only; clear French errors for a bad file."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from classes.models import Student, Teacher
from exports.builders import DATASET_CSV_COLUMNS, DATASET_DTYPES
from exports.dataset import dataset_row_id
from generation.models import Appreciation, Feedback
from generation.prompts import PromptInputs, build_messages
from learning.training_data import (
    SPLIT_BY_COMPONENTS,
    SPLIT_BY_CUT,
    SPLITS,
    TEST,
    TRAIN,
    VALIDATION,
    TrainingData,
    TrainingDataError,
    original_dataset_rows,
    training_data_build,
)
from tests.factories import AppreciationFactory, FeedbackFactory, shared_subject

from .synthetic import final_text_for, synthetic_feedback

pytestmark = pytest.mark.django_db


def people_by_row_id() -> dict[int, tuple[int, int]]:
    """row id -> (student id, teacher id), from the database (the rows carry neither)."""
    return {
        dataset_row_id(feedback_pk=item.pk): (item.appreciation.student_id, item.validated_by_id)
        for item in Feedback.objects.select_related("appreciation")
    }


def sides(data: TrainingData) -> tuple[dict, dict]:
    people = people_by_row_id()
    students: dict[int, set[str]] = {}
    teachers: dict[int, set[str]] = {}
    for name in SPLITS:
        for row in data.splits[name]:
            student, teacher = people[row["id"]]
            students.setdefault(student, set()).add(name)
            teachers.setdefault(teacher, set()).add(name)
    return students, teachers


def link(teacher, student, *, text: str) -> Feedback:
    """A second subject's validation: `teacher` writes for `student` of another class."""
    appreciation = AppreciationFactory(
        student=student,
        subject=shared_subject("HGGSP"),
        term=Appreciation.objects.filter(student=student).first().term,
        text=text,
    )
    source = Feedback.objects.get(appreciation__student=student)
    return FeedbackFactory(
        appreciation=appreciation,
        school=source.school,
        validated_by=teacher,
        final_text=text,
        inputs=source.inputs,
        edited=False,
    )


def test_no_student_and_no_teacher_on_two_sides(settings):
    world = synthetic_feedback(teachers=10, students=12)
    # Teachers 0 and 1 share a student, so do 2 and 3: their classes must stay together.
    link(world.teachers[0], Student.objects.filter(school_class__name="2nde 2").first(), text="A.")
    link(world.teachers[2], Student.objects.filter(school_class__name="2nde 4").first(), text="B.")

    data = training_data_build()

    assert data.split_strategy == SPLIT_BY_COMPONENTS
    counts = data.counts()
    assert sum(counts.values()) == 10 * 12 + 2
    assert counts[VALIDATION] > 0 and counts[TEST] > 0 and counts[TRAIN] > counts[VALIDATION]
    students, teachers = sides(data)
    assert all(len(found) == 1 for found in students.values())
    assert all(len(found) == 1 for found in teachers.values())
    by_teacher = {teacher: found.pop() for teacher, found in teachers.items()}
    assert by_teacher[world.teachers[0].pk] == by_teacher[world.teachers[1].pk]
    assert by_teacher[world.teachers[2].pk] == by_teacher[world.teachers[3].pk]


def test_one_connected_school_is_cut_and_the_rows_between_sides_left_out():
    world = synthetic_feedback(teachers=1, students=40)
    # A second teacher validates for every student: one component holds everything.
    other = Teacher.objects.create(username="second", school=world.school)
    for item in list(Feedback.objects.select_related("appreciation__student")):
        link(other, item.appreciation.student, text="Bon ensemble.")
    data = training_data_build(validation_share=0.3, test_share=0.3)

    assert data.split_strategy == SPLIT_BY_CUT
    students, teachers = sides(data)
    assert all(len(found) == 1 for found in students.values())
    assert all(len(found) == 1 for found in teachers.values())
    kept = sum(data.counts().values())
    assert kept + data.left_out["student_and_teacher_on_two_sides"] == 80


def test_the_split_is_deterministic_and_the_hash_follows_the_rows():
    synthetic_feedback(teachers=6, students=8)
    first, second = training_data_build(), training_data_build()
    assert first.splits == second.splits
    assert first.snapshot() == second.snapshot()
    snapshot = first.snapshot()
    assert snapshot["rows"] == first.counts() and snapshot["schools"] == 1
    assert snapshot["id"].startswith("snapshot-") and len(snapshot["sha256"]) == 64

    item = Feedback.objects.order_by("pk").last()
    item.final_text = "Un texte validé autrement."
    item.save()
    assert training_data_build().snapshot()["sha256"] != snapshot["sha256"]


def test_opted_out_schools_are_left_out():
    kept = synthetic_feedback(teachers=10, students=3)
    synthetic_feedback(teachers=4, students=5, opted_in=False)
    data = training_data_build()
    assert data.schools == 1
    expected = {dataset_row_id(feedback_pk=item.pk) for item in kept.feedback}
    assert {row["id"] for name in SPLITS for row in data.splits[name]} == expected
    assert sum(data.counts().values()) == 30

    kept.school.feedback_trains_shared_models = False
    kept.school.save()
    assert sum(training_data_build().counts().values()) == 0


def test_rows_are_trl_rows_and_the_written_files_name_no_one(tmp_path, settings):
    synthetic_feedback(teachers=3, students=6)
    data = training_data_build()
    row = data.splits[TRAIN][0]
    assert set(row) == {"id", "prompt", "completion", "chat_template_kwargs"}
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["completion"][0]["role"] == "assistant"
    assert row["chat_template_kwargs"] == {"date_string": settings.APPRECIATION_CHAT_DATE}
    preference = training_data_build(method="dpo").splits[TRAIN][0]
    assert set(preference) == {"id", "prompt", "chosen", "rejected", "chat_template_kwargs"}

    data.write(tmp_path)
    written = "".join(path.read_text(encoding="utf-8") for path in tmp_path.iterdir())
    for student in Student.objects.all():
        assert student.last_name not in written
    for teacher in Teacher.objects.all():
        assert teacher.username not in written and teacher.last_name not in written
    assert TrainingData.read(tmp_path).splits == data.splits


# --- The original dataset, from a local copy -------------------------------------------------

ORIGINAL = [
    # Id, redoublant, matière, trimestre, T1, T2, T3, comportement, participation, travail, text
    (11, 0, "Histoire-Géographie", 1, 12.5, None, None, 7.0, 6.0, 8.0, "Bon début d'année."),
    (12, 1, "Histoire-Géographie", 2, 9.0, 11.0, None, 5.0, 4.0, 6.0, "Des progrès à confirmer."),
    # Broken rows of the real dataset: a rating of 19 on 0-10, a grade in the text.
    (13, 0, "Histoire-Géographie", 1, 14.0, None, None, 8.0, 7.0, 19.0, "Très bien."),
    (14, 0, "Histoire-Géographie", 1, 14.0, None, None, 8.0, 7.0, 6.0, "Moyenne de 14/20."),
    # The trimester 3 average is missing.
    (15, 0, "Histoire-Géographie", 3, 10.0, 11.0, None, 5.0, 5.0, 5.0, "Ensemble correct."),
]


def write_parquet(path):
    schema = pa.schema(
        [(name, pa.type_for_alias(DATASET_DTYPES[name])) for name in DATASET_CSV_COLUMNS]
    )
    records = [dict(zip(DATASET_CSV_COLUMNS, values, strict=True)) for values in ORIGINAL]
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path)


def write_csv(path):
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DATASET_CSV_COLUMNS)
        for values in ORIGINAL:
            writer.writerow(["" if value is None else value for value in values])


@pytest.mark.parametrize("writer,name", [(write_parquet, "a.parquet"), (write_csv, "a.csv")])
def test_the_original_dataset_is_read_into_prompts_the_platform_sends(tmp_path, writer, name):
    path = tmp_path / name
    writer(path)
    rows = original_dataset_rows(path)
    assert [row.row_id for row in rows] == [11, 12]
    assert rows[0].prompt_messages == build_messages(
        PromptInputs("Histoire-Géographie", 1, (12.5, None, None), 7, 6, 8)
    )
    assert rows[1].prompt_messages == build_messages(
        PromptInputs("Histoire-Géographie", 2, (9, 11, None), 5, 4, 6)
    )
    assert [row.final_text for row in rows] == ["Bon début d'année.", "Des progrès à confirmer."]


def test_the_original_dataset_goes_to_the_train_split_only(tmp_path):
    synthetic_feedback(teachers=6, students=6)
    path = tmp_path / "appreciation.parquet"
    write_parquet(path)
    without = training_data_build()
    with_original = training_data_build(original_dataset_path=path)
    assert with_original.counts() == {**without.counts(), TRAIN: without.counts()[TRAIN] + 2}
    assert with_original.splits[VALIDATION] == without.splits[VALIDATION]
    snapshot = with_original.snapshot()
    assert snapshot["original_dataset_rows"] == 2 and snapshot["original_dataset_in"] == TRAIN
    assert snapshot["sha256"] != without.snapshot()["sha256"]
    texts = [row["completion"][0]["content"] for row in with_original.splits[TRAIN]]
    assert "Bon début d'année." in texts
    with pytest.raises(TrainingDataError, match="DPO"):
        training_data_build(method="dpo", original_dataset_path=path)


def test_a_bad_original_file_gets_a_french_message(tmp_path):
    with pytest.raises(TrainingDataError, match="Fichier introuvable"):
        original_dataset_rows(tmp_path / "absent.parquet")
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"not a parquet file at all")
    with pytest.raises(TrainingDataError, match="n'a pas pu être lu"):
        original_dataset_rows(garbage)
    other = tmp_path / "other.csv"
    other.write_text("nom,texte\nA,B\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match="colonne\\(s\\) manquante\\(s\\) : Id"):
        original_dataset_rows(other)
    text = tmp_path / "notes.txt"
    text.write_text("x", encoding="utf-8")
    with pytest.raises(TrainingDataError, match="n'a pas pu être lu"):
        original_dataset_rows(text)
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(DATASET_CSV_COLUMNS) + "\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match="Aucune ligne utilisable"):
        original_dataset_rows(empty)


def test_the_synthetic_pattern_is_the_final_text():
    # The training test relies on it: the teacher's text follows the average.
    world = synthetic_feedback(teachers=1, students=5)
    for item in world.feedback:
        assert item.final_text == final_text_for(item.inputs["averages"][1])
    assert json.dumps(world.feedback[0].inputs)
