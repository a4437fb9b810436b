"""A synthetic feedback set for training tests: teachers each with their own class, every
student validated once with a model draft the teacher rewrote. The final texts follow a short
fixed pattern (one of three sentences chosen by the average), so even the tiny random model
learns it in a few steps. Drafts are not from the test model (is_test_model=False), so the
preference export keeps them (it leaves test-model drafts out)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from exports.dataset import validated_prompt
from generation.models import Appreciation, Draft, Feedback, GenerationJob
from tests.factories import (
    AppreciationFactory,
    DraftFactory,
    FeedbackFactory,
    GenerationJobFactory,
    SchoolClassFactory,
    SchoolFactory,
    SchoolYearFactory,
    StudentFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    TermFactory,
)

FINAL_TEXTS = (
    "Trimestre fragile, il faut reprendre les leçons avec régularité.",
    "Ensemble correct, la participation orale reste à développer.",
    "Très bon trimestre, travail sérieux et investi, à poursuivre.",
)
DRAFT_TEXT = "Des résultats à consolider par un travail plus régulier."


@dataclass
class SyntheticSchool:
    school: object
    teachers: list
    feedback: list


def final_text_for(average: float) -> str:
    return FINAL_TEXTS[0 if average < 10 else 1 if average < 14 else 2]


def synthetic_feedback(
    *, teachers: int = 12, students: int = 20, opted_in: bool = True, seed: int = 7
) -> SyntheticSchool:
    school = SchoolFactory(feedback_trains_shared_models=opted_in)
    year = SchoolYearFactory(school=school)
    term = TermFactory(school_year=year, number=2)
    rng = random.Random(seed)
    people, items = [], []
    for index in range(teachers):
        teacher = TeacherFactory(school=school)
        people.append(teacher)
        school_class = SchoolClassFactory(school=school, school_year=year, name=f"2nde {index + 1}")
        assignment = TeachingAssignmentFactory(teacher=teacher, school_class=school_class)
        job = GenerationJobFactory(
            assignment=assignment, term=term, status=GenerationJob.Status.SUCCEEDED
        )
        for _ in range(students):
            student = StudentFactory(school_class=school_class)
            average = rng.randint(4, 19)
            inputs = {
                "subject": "Histoire-Géographie",
                "level": "Seconde",
                "trimester": 2,
                "repeating": False,
                "averages": [float(rng.randint(4, 19)), float(average), None],
                "behaviour": float(rng.randint(0, 10)),
                "participation": float(rng.randint(0, 10)),
                "work": float(rng.randint(0, 10)),
            }
            prompt = validated_prompt(inputs)
            final = final_text_for(average)
            draft = DraftFactory(
                job=job,
                student=student,
                subject=assignment.subject,
                term=term,
                status=Draft.Status.GENERATED,
                prompt_messages=prompt,
                prompt_version="test",
                text=DRAFT_TEXT,
                is_test_model=False,
            )
            appreciation = AppreciationFactory(
                student=student,
                subject=assignment.subject,
                term=term,
                status=Appreciation.Status.VALIDATED,
                text=final,
                draft=draft,
            )
            items.append(
                FeedbackFactory(
                    appreciation=appreciation,
                    draft=draft,
                    school=school,
                    validated_by=teacher,
                    draft_text=DRAFT_TEXT,
                    final_text=final,
                    edited=True,
                    prompt_messages=prompt,
                    inputs=inputs,
                )
            )
    return SyntheticSchool(school=school, teachers=people, feedback=items)


def feedback_count() -> int:
    return Feedback.objects.count()
