"""Shared fixtures: a school with a year of three terms, its people and a class; another school."""

from dataclasses import dataclass

import pytest

from classes.models import SchoolClass, Teacher, TeachingAssignment, Term

from .factories import (
    PASSWORD,
    SchoolClassFactory,
    SchoolFactory,
    SchoolYearFactory,
    StudentFactory,
    TeacherFactory,
    TeachingAssignmentFactory,
    TermAssessmentFactory,
    TermFactory,
    shared_subject,
)


@dataclass
class World:
    """One school seen from every role, and a second school that none of them may reach."""

    school: object
    terms: list[Term]
    teacher: Teacher
    other_teacher: Teacher
    head: Teacher
    admin: Teacher
    school_class: SchoolClass
    assignment: TeachingAssignment
    other_assignment: TeachingAssignment
    foreign_teacher: Teacher
    foreign_assignment: TeachingAssignment
    foreign_term: Term

    @property
    def term(self) -> Term:
        return self.terms[1]


def make_school_with_class(*, students: int = 3):
    school = SchoolFactory()
    year = SchoolYearFactory(school=school)
    terms = [TermFactory(school_year=year, number=n) for n in (1, 2, 3)]
    school_class = SchoolClassFactory(school=school, school_year=year, name="2nde 3")
    teacher = TeacherFactory(school=school)
    assignment = TeachingAssignmentFactory(teacher=teacher, school_class=school_class)
    for index in range(students):
        student = StudentFactory(school_class=school_class, last_name=f"Nom{index:02d}")
        TermAssessmentFactory(student=student, term=terms[0], subject=assignment.subject)
    return school, terms, school_class, teacher, assignment


@pytest.fixture
def world(db) -> World:
    school, terms, school_class, teacher, assignment = make_school_with_class()
    other_teacher = TeacherFactory(school=school)
    other_class = SchoolClassFactory(
        school=school, school_year=terms[0].school_year, name="1ère 1"
    )
    StudentFactory(school_class=other_class)
    other_assignment = TeachingAssignmentFactory(
        teacher=other_teacher, school_class=other_class, subject=shared_subject("HGGSP")
    )
    head = TeacherFactory(school=school, role=Teacher.Role.DEPARTMENT_HEAD)
    head.headed_subjects.add(shared_subject("HG"))
    admin = TeacherFactory(school=school, role=Teacher.Role.SCHOOL_ADMIN, is_staff=True)
    f_school, f_terms, _, f_teacher, f_assignment = make_school_with_class()
    return World(
        school=school,
        terms=terms,
        teacher=teacher,
        other_teacher=other_teacher,
        head=head,
        admin=admin,
        school_class=school_class,
        assignment=assignment,
        other_assignment=other_assignment,
        foreign_teacher=f_teacher,
        foreign_assignment=f_assignment,
        foreign_term=f_terms[1],
    )


@pytest.fixture
def login(client):
    def _login(user: Teacher):
        client.logout()
        assert client.login(username=user.username, password=PASSWORD)
        return client

    return _login
