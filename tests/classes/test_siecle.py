"""SIECLE / STS-web import: reading the exports, the preview, applying, re-running, the admin."""

from __future__ import annotations

import io
import zipfile
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from classes.invitations import invitation_path
from classes.models import (
    Level,
    SchoolClass,
    Student,
    Subject,
    Teacher,
    TeachingAssignment,
    TermAssessment,
)
from classes.siecle import (
    MAX_BYTES,
    DirectoryFileError,
    SiecleFile,
    StsFile,
    level_code,
    parse_directory_file,
    parsed_from_data,
)
from classes.siecle_services import directory_apply, directory_preview
from generation.models import Appreciation
from tests.factories import (
    PASSWORD,
    SchoolClassFactory,
    SchoolFactory,
    SchoolYearFactory,
    StudentFactory,
    TeacherFactory,
    TermFactory,
    full_names,
    level,
    shared_subject,
)
from tests.siecle_files import (
    UAI,
    Division,
    Eleve,
    Individu,
    generated_school,
    siecle_xml,
    sts_xml,
)

BIRTH = date(2010, 3, 14)


def sample_eleves() -> list[Eleve]:
    return [
        Eleve("1001", "070123456AB", "N'Diaye", "Éloïse", BIRTH, "20010018110", "2NDE 3"),
        Eleve(
            "1002", "070123457AC", "Le Gall-Moreau", "Jean-Baptiste", None, "20010018110", "2NDE 3"
        ),
        Eleve("1003", "070123458AD", "de La Fontaine", "Zoé", BIRTH, "20111010110", "1G2"),
        Eleve("1004", "070123459AE", "Œuvray", "Maël", BIRTH, "20212010110", "TG1"),
    ]  # fmt: skip


@pytest.fixture
def school(db):
    school = SchoolFactory(name="Lycée Chateaubriand", uai=UAI)
    year = SchoolYearFactory(school=school)
    for number in (1, 2, 3):
        TermFactory(school_year=year, number=number)
    return school


def preview(school, content: bytes):
    return directory_preview(school=school, parsed=parse_directory_file(content))


def apply(school, content: bytes):
    return directory_apply(school=school, plan_data=parse_directory_file(content).to_data())


def snapshot():
    """Every row the import may touch, to prove a refused file changed nothing."""
    return (
        list(Student.objects.order_by("pk").values()),
        list(SchoolClass.objects.order_by("pk").values()),
        list(Teacher.objects.order_by("pk").values()),
        list(Subject.objects.order_by("pk").values()),
        list(TeachingAssignment.objects.order_by("pk").values()),
    )


# --- Reading ---------------------------------------------------------------------------------


def test_siecle_file_is_read_with_official_element_names():
    eleves = sample_eleves()
    eleves[1].nom_usage = "Le Gall-Moreau"
    eleves.append(
        Eleve("1005", "", "Gone", "Léo", BIRTH, "20010018110", "2NDE 3", sortie=date(2026, 10, 1))
    )
    parsed = parse_directory_file(siecle_xml(eleves))

    assert isinstance(parsed, SiecleFile)
    assert parsed.uai == UAI and parsed.year == 2026
    first = parsed.students[0]
    assert (first.siecle_id, first.ine, first.last_name, first.first_name) == (
        "1001",
        "070123456AB",
        "N'Diaye",
        "Éloïse",
    )
    assert first.birth_date == BIRTH and first.mef == "20010018110" and first.division == "2NDE 3"
    assert [s.last_name for s in parsed.students[1:4]] == [
        "Le Gall-Moreau",
        "de La Fontaine",
        "Œuvray",
    ]
    assert parsed.students[1].birth_date is None
    assert parsed.students[4].left_on == date(2026, 10, 1)
    assert parsed.mefs["20111010110"] == "1ERE GENERALE"
    assert parsed_from_data(parsed.to_data()) == parsed


def test_sts_file_is_read_teachers_subjects_and_services():
    individus = [
        Individu("11", "Le Gall-Moreau", "Jean-Baptiste"),
        Individu("12", "N'Diaye", "Éloïse"),
        Individu("13", "Proviseur", "Paul", fonction="DIR"),
    ]
    divisions = [
        Division("2NDE 3", "20010018110", [("040300", ["11"]), ("030201", ["12", "13"])]),
        Division("1G2", "20111010110", [("040300", ["11"])]),
    ]
    groups = [("ESP2-G1", ["2NDE 3", "1G2"], "030602", ["12"])]
    parsed = parse_directory_file(sts_xml(individus, divisions, groups=groups))

    assert isinstance(parsed, StsFile)
    assert parsed.uai == UAI and parsed.year == 2026
    assert [(t.sts_id, t.last_name, t.first_name) for t in parsed.teachers] == [
        ("11", "Le Gall-Moreau", "Jean-Baptiste"),
        ("12", "N'Diaye", "Éloïse"),
    ]
    assert parsed.services == [
        ("11", "2NDE 3", "040300"),
        ("12", "2NDE 3", "030201"),
        ("11", "1G2", "040300"),
        ("12", "2NDE 3", "030602"),
        ("12", "1G2", "030602"),
    ]
    assert sorted(parsed.subjects) == ["030201", "030602", "040300"]  # only those taught
    assert parsed.subjects["040300"].name == "Histoire-Géographie"
    assert parsed.subjects["040300"].short_code == "HIGEO"
    assert parsed.divisions["1G2"].mef == "20111010110"
    assert parsed_from_data(parsed.to_data()) == parsed


def test_zipped_export_is_read():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ElevesSansAdresses.xml", siecle_xml(sample_eleves()))
    assert len(parse_directory_file(buffer.getvalue()).students) == 4


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<BEE_ELEVES><PARAMETRES><UAJ>&lol3;</UAJ></PARAMETRES></BEE_ELEVES>"
)
EXTERNAL = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<STS_EDT><PARAMETRES><UAJ CODE='&e;'/></PARAMETRES></STS_EDT>"
)


@pytest.mark.parametrize(
    ("content", "code", "words"),
    [
        (b"nom;prenom\nMartin;Lea\n", "unreadable", "n'est pas un export XML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "unreadable", "n'est pas un export XML"),
        (b"<BEE_ELEVES><PARAMETRES>", "unreadable", "n'est pas un export XML"),
        (b"", "empty", "vide"),
        (BOMB, "forbidden_xml", "déclarations interdites"),
        (EXTERNAL, "forbidden_xml", "déclarations interdites"),
        (b"<html><body/></html>", "wrong_root", "ni un export SIECLE"),
        (b"<BEE_ELEVES><DONNEES><ELEVES/></DONNEES></BEE_ELEVES>", "missing_element", "UAJ"),
        (
            b"<BEE_ELEVES><PARAMETRES><UAJ>0351234X</UAJ></PARAMETRES><DONNEES/></BEE_ELEVES>",
            "missing_element",
            "DONNEES/ELEVES",
        ),
        (b"<STS_EDT><PARAMETRES/><DONNEES/></STS_EDT>", "missing_element", "UAJ"),
        (
            b'<STS_EDT><PARAMETRES><UAJ CODE="0351234X"/></PARAMETRES><DONNEES/></STS_EDT>',
            "missing_element",
            "INDIVIDUS",
        ),
        (b"PK\x03\x04 not really a zip", "unreadable", "n'est pas un export XML"),
    ],
)
def test_malformed_files_get_a_french_message(content, code, words):
    with pytest.raises(DirectoryFileError) as info:
        parse_directory_file(content)
    assert info.value.code == code
    assert words in info.value.messages[0]


def test_file_over_20_mb_is_refused_before_parsing():
    with pytest.raises(DirectoryFileError) as info:
        parse_directory_file(b" " * (MAX_BYTES + 1))
    assert info.value.code == "too_big" and "20 Mo" in info.value.messages[0]


def test_zip_bomb_is_refused():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("Eleves.xml", b"<BEE_ELEVES>" + b" " * (MAX_BYTES + 10) + b"</BEE_ELEVES>")
    assert len(buffer.getvalue()) < 100_000
    with pytest.raises(DirectoryFileError) as info:
        parse_directory_file(buffer.getvalue())
    assert info.value.code == "too_big"


@pytest.mark.parametrize(
    ("mef", "label", "division", "expected"),
    [
        ("20010018110", "", "", "2nde"),
        ("20111010110", "", "", "1ere"),
        ("20212010110", "", "", "Tle"),
        ("10010012110", "", "", "6e"),
        ("10110001110", "", "", "5e"),
        ("10310019110", "", "", "3e"),
        ("99999999999", "TERMINALE STMG", "", "Tle"),
        ("", "", "4EME B", "4e"),
        ("", "", "BTS SIO", "autre"),
    ],
)
def test_levels_from_mef(mef, label, division, expected):
    assert level_code(mef=mef, mef_label=label, division=division) == expected


# --- SIECLE: first import, re-run mid-year -----------------------------------------------------


def test_first_siecle_import_of_several_hundred_students(school):
    eleves, _, _ = generated_school(students=420)
    content = siecle_xml(eleves)

    plan = preview(school, content)
    assert plan.is_valid, plan.errors
    counts = plan.counts()
    assert counts["students_created"] == 420
    assert counts["classes_created"] == 12
    assert counts["students_updated"] == counts["students_left"] == 0
    assert Student.objects.count() == 0  # a preview writes nothing

    result = apply(school, content)
    assert result.counts == counts
    assert Student.objects.filter(school_class__school=school).count() == 420
    classes = {c.name: c.level.code for c in SchoolClass.objects.filter(school=school)}
    assert classes["2NDE1"] == "2nde" and classes["1G1"] == "1ere" and classes["TG4"] == "Tle"
    stored = Student.objects.get(siecle_id="100000")
    assert stored.ine == eleves[0].ine and stored.birth_date == eleves[0].naissance
    # sort_key kept by the bulk writes: the French order of the names.
    for student in Student.objects.all()[:50]:
        assert bytes(student.sort_key) == student.compute_sort_key()

    again = preview(school, content)
    assert again.counts()["students_unchanged"] == 420
    assert not again.has_changes


def test_siecle_rerun_mid_year_keeps_grades_and_appreciations(school):
    eleves = sample_eleves()
    apply(school, siecle_xml(eleves))
    term = school.years.get().terms.get(number=1)
    moved = Student.objects.get(siecle_id="1001")
    subject = shared_subject("HG")
    assessment = TermAssessment.objects.create(
        student=moved, subject=subject, term=term, average=Decimal("14.5")
    )
    appreciation = Appreciation.objects.create(
        student=moved, subject=subject, term=term, text="Bon trimestre, élève investie."
    )
    leaving = Student.objects.get(siecle_id="1003")
    Appreciation.objects.create(student=leaving, subject=subject, term=term, text="Sérieux.")
    gone = Student.objects.get(siecle_id="1004")

    today = timezone.localdate()
    eleves[0].division = "2NDE 5"  # class change
    eleves[2].sortie = today - timedelta(days=3)  # SIECLE says they left
    del eleves[3]  # no longer in SIECLE at all
    eleves.append(Eleve("1006", "070123460AF", "Bénard", "Lucie", BIRTH, "20010018110", "2NDE 5"))
    content = siecle_xml(eleves)

    plan = preview(school, content)
    assert plan.counts() == {
        **plan.counts(),
        "students_created": 1,
        "students_updated": 1,
        "students_unchanged": 1,
        "students_left": 2,
        "classes_created": 1,
        "classes_existing": 1,
    }
    [change] = plan.students_to_update[0].changes
    assert (change.label, change.old, change.new) == ("classe", "2NDE 3", "2NDE 5")
    assert {s.siecle_id for s, _ in plan.students_leaving} == {"1003", "1004"}
    apply(school, content)

    moved.refresh_from_db()
    assert moved.school_class.name == "2NDE 5" and moved.pk == assessment.student_id
    assessment.refresh_from_db()
    appreciation.refresh_from_db()
    assert assessment.average == Decimal("14.5") and assessment.student_id == moved.pk
    assert appreciation.text == "Bon trimestre, élève investie."
    leaving.refresh_from_db()
    gone.refresh_from_db()
    assert leaving.left_on == today - timedelta(days=3)
    assert gone.left_on == today
    assert leaving.appreciations.count() == 1  # nothing deleted
    assert Student.objects.count() == 5
    assert Student.objects.get(siecle_id="1006").school_class.name == "2NDE 5"

    # The student who left comes back: no longer marked left, in their class again.
    eleves.append(Eleve("1004", "070123459AE", "Œuvray", "Maël", BIRTH, "20212010110", "TG1"))
    plan = preview(school, siecle_xml(eleves))
    assert plan.counts()["students_updated"] == 1
    apply(school, siecle_xml(eleves))
    gone.refresh_from_db()
    assert gone.left_on is None


def test_existing_students_are_linked_by_name_not_duplicated(school):
    year = school.years.get()
    school_class = SchoolClassFactory(school=school, school_year=year, name="2NDE 3")
    typed = StudentFactory(school_class=school_class, last_name="N’DIAYE", first_name="Eloise")
    plan = preview(school, siecle_xml(sample_eleves()))
    assert plan.counts()["students_created"] == 3
    linked = plan.students_to_update[0]
    assert linked.student == typed
    assert {c.label for c in linked.changes} >= {"nom", "prénom", "INE", "identifiant SIECLE"}


def test_foreign_uai_is_refused_and_changes_nothing(school):
    apply(school, siecle_xml(sample_eleves()))
    before = snapshot()
    foreign = siecle_xml(sample_eleves()[:1], uai="0759999Z")

    plan = preview(school, foreign)
    assert plan.errors == [
        "Ce fichier est celui de l'établissement 0759999Z, pas de « Lycée Chateaubriand » "
        "(0351234X) : rien n'a été importé."
    ]
    with pytest.raises(Exception) as info:
        apply(school, foreign)
    assert "0759999Z" in str(info.value)
    assert snapshot() == before


def test_school_without_uai_or_year_is_told_what_to_do(school):
    other = SchoolFactory(uai="")
    assert "code UAI" in preview(other, siecle_xml(sample_eleves())).errors[0]
    plan = preview(school, siecle_xml(sample_eleves(), year=2030))
    assert "2030-2031 n'existe pas" in plan.errors[0]


def test_apply_is_atomic(school, monkeypatch):
    apply(school, siecle_xml(sample_eleves()[:2]))
    before = snapshot()
    eleves = sample_eleves()
    eleves[0].division = "2NDE 9"

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(Student.objects.all()), "bulk_update", boom)
    with pytest.raises(RuntimeError):
        apply(school, siecle_xml(eleves))
    assert snapshot() == before


# --- STS-web ---------------------------------------------------------------------------------


def sample_sts(**kwargs) -> bytes:
    individus = [
        Individu("11", "Le Gall-Moreau", "Jean-Baptiste"),
        Individu("12", "N'Diaye", "Éloïse"),
        Individu("13", "de La Fontaine", "Jean"),
    ]
    divisions = [
        Division("2NDE 3", "20010018110", [("040300", ["11"]), ("030201", ["12"])]),
        Division("1G2", "20111010110", [("040300", ["11"]), ("061300", ["13"])]),
    ]
    return sts_xml(individus, divisions, **kwargs)


def test_sts_import_creates_teachers_subjects_classes_and_assignments(school):
    maths = Subject.objects.create(school=school, name="Mathématiques", short_name="M")
    existing = TeacherFactory(school=school, last_name="de La Fontaine", first_name="Jean")

    plan = preview(school, sample_sts())
    assert plan.is_valid, plan.errors
    counts = plan.counts()
    assert counts["teachers_created"] == 2
    assert counts["teachers_updated"] == 1  # linked by name: gets the STS-web id
    assert counts["subjects_created"] == 1  # Anglais LV1
    assert counts["subjects_matched"] == 2  # HG (shared, by name), Maths (by name)
    assert counts["subjects_code_set"] == 1
    assert counts["classes_created"] == 2
    assert counts["assignments_created"] == 4
    assert [p.username for p in plan.teachers_to_create] == [
        "jean.le-gall-moreau",
        "eloise.n-diaye",
    ]

    result = apply(school, sample_sts())
    assert len(result.created_teacher_ids) == 2
    created = Teacher.objects.get(sts_id="11")
    assert created.school == school and created.role == Teacher.Role.TEACHER
    assert not created.has_usable_password()
    assert (created.last_name, created.first_name) == ("Le Gall-Moreau", "Jean-Baptiste")
    existing.refresh_from_db()
    assert existing.sts_id == "13" and existing.has_usable_password()
    maths.refresh_from_db()
    assert maths.national_code == "061300"
    english = Subject.objects.get(national_code="030201")
    assert (english.school, english.name, english.short_name) == (school, "Anglais LV1", "AGL1")
    assert TeachingAssignment.objects.filter(
        teacher=created, school_class__name="1G2", subject=shared_subject("HG")
    ).exists()
    assert TeachingAssignment.objects.filter(school_class__school=school).count() == 4

    # Re-run: everything is found again (subjects by national code now), nothing changes.
    again = preview(school, sample_sts())
    assert not again.has_changes
    assert again.counts()["assignments_existing"] == 4
    assert {p.matched_by for p in again.subjects} == {"code", "nom"}  # HG is shared: by name


def test_sts_foreign_uai_refused(school):
    before = snapshot()
    plan = preview(school, sample_sts(uai="0759999Z"))
    assert "0759999Z" in plan.errors[0] and "rien n'a été importé" in plan.errors[0]
    assert snapshot() == before


def test_invitation_link_sets_the_password(school, client):
    apply(school, sample_sts())
    teacher = Teacher.objects.get(sts_id="12")
    url = invitation_path(teacher)

    response = client.get(url, follow=True)
    assert response.status_code == 200
    assert "Choisir votre mot de passe" in response.content.decode()
    form_url = response.redirect_chain[-1][0]
    password = "Un-mot-de-passe-solide-42"
    response = client.post(form_url, {"new_password1": password, "new_password2": password})
    assert response.status_code == 302
    assert response["Location"] == reverse("teacher_invitation_done")
    teacher.refresh_from_db()
    assert teacher.check_password(password)
    assert client.login(username=teacher.username, password=password)
    client.logout()
    # Used once: the link no longer works.
    response = client.get(url, follow=True)
    assert "Lien expiré ou déjà utilisé" in response.content.decode()
    assert not default_token_generator.check_token(teacher, url.rstrip("/").split("/")[-1])


# --- The admin page --------------------------------------------------------------------------


@pytest.fixture
def school_admin(school):
    return TeacherFactory(school=school, role=Teacher.Role.SCHOOL_ADMIN, is_staff=True)


def import_url(school) -> str:
    return reverse("admin:classes_school_directory_import", args=[school.pk])


def upload(client, school, content: bytes, name: str = "ElevesSansAdresses.xml"):
    return client.post(import_url(school), {"file": SimpleUploadedFile(name, content)})


def test_admin_page_end_to_end_as_school_admin(school, school_admin, client):
    assert client.login(username=school_admin.username, password=PASSWORD)
    page = client.get(reverse("admin:classes_school_change", args=[school.pk]))
    assert import_url(school) in page.content.decode()
    assert client.get(import_url(school)).status_code == 200

    response = upload(client, school, siecle_xml(sample_eleves()))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Prévisualisation" in body and "N&#x27;Diaye Éloïse" in body
    assert Student.objects.count() == 0
    payload = response.context["payload"]
    assert response.context["counts"]["students_created"] == 4

    response = client.post(import_url(school), {"payload": payload})
    assert response.status_code == 200
    assert "Import SIECLE terminé : 4 élève(s) créé(s)" in response.content.decode()
    assert Student.objects.filter(school_class__school=school).count() == 4

    response = upload(client, school, sample_sts(), "sts_emp_0351234X_2026.xml")
    response = client.post(import_url(school), {"payload": response.context["payload"]})
    body = response.content.decode()
    assert "Import STS-web terminé : 3 enseignant(s) créé(s)" in body
    teacher = Teacher.objects.get(sts_id="11")
    assert_invitation_for(teacher, body)  # the link to copy


def test_admin_page_refuses_bad_and_foreign_files(school, school_admin, client):
    assert client.login(username=school_admin.username, password=PASSWORD)
    before = snapshot()
    response = upload(client, school, siecle_xml(sample_eleves(), uai="0759999Z"))
    assert response.status_code == 400
    assert "pas de « Lycée Chateaubriand »" in response.content.decode()
    response = upload(client, school, BOMB)
    assert response.status_code == 400
    assert "déclarations interdites" in response.content.decode()
    response = client.post(import_url(school), {"payload": "forged"})
    assert response.status_code == 400
    assert "invalides ou ont été modifiées" in response.content.decode()
    assert snapshot() == before


def test_admin_page_is_a_404_for_another_school(school, school_admin, client):
    other = SchoolFactory(uai="0759999Z")
    SchoolYearFactory(school=other)
    assert client.login(username=school_admin.username, password=PASSWORD)
    assert client.get(import_url(other)).status_code == 404
    before = snapshot()
    response = upload(client, other, siecle_xml(sample_eleves(), uai="0759999Z"))
    assert response.status_code == 404
    assert snapshot() == before


def test_teacher_cannot_reach_the_import(school, client):
    teacher = TeacherFactory(school=school)
    assert client.login(username=teacher.username, password=PASSWORD)
    response = client.get(import_url(school))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_superuser_imports_into_any_school(school, client):
    root = Teacher.objects.create_superuser("root", "root@example.org", PASSWORD)
    assert client.login(username="root", password=PASSWORD)
    response = upload(client, school, siecle_xml(sample_eleves()))
    client.post(import_url(school), {"payload": response.context["payload"]})
    assert Student.objects.filter(school_class__school=school).count() == 4
    assert root.school is None


def assert_invitation_for(teacher, text: str) -> None:
    """`text` holds a valid invitation link for `teacher` (the token carries the time in
    seconds, so a link made a second apart differs: check it, don't compare it)."""
    import re

    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    uid = urlsafe_base64_encode(force_bytes(teacher.pk))
    tokens = re.findall(rf"/invitation/{uid}/([0-9a-z]+-[0-9a-f]+)/", text)
    assert tokens, text
    assert all(default_token_generator.check_token(teacher, token) for token in tokens)


def test_admin_invitation_actions(school, school_admin, client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    apply(school, sample_sts())
    with_mail = Teacher.objects.get(sts_id="12")
    with_mail.email = "eloise.ndiaye@example.org"
    with_mail.save()
    assert client.login(username=school_admin.username, password=PASSWORD)
    changelist = reverse("admin:classes_teacher_changelist")
    ids = list(Teacher.objects.filter(sts_id__in=["11", "12"]).values_list("pk", flat=True))
    response = client.post(changelist, {"action": "invitation_links", "_selected_action": ids})
    assert response.status_code == 200
    assert_invitation_for(with_mail, response.content.decode())
    response = client.post(
        changelist, {"action": "email_invitations", "_selected_action": ids}, follow=True
    )
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["eloise.ndiaye@example.org"]
    assert_invitation_for(with_mail, mail.outbox[0].body)


def test_classes_are_created_in_the_school_year_with_levels(school):
    Level.objects.filter(code="6e").delete()
    eleves = [Eleve("1", "", "Martin", "Léa", BIRTH, "10010012110", "6A")]
    apply(school, siecle_xml(eleves))
    six_a = SchoolClass.objects.get(name="6A")
    assert six_a.level.code == "6e" and six_a.level.name == "Sixième"
    assert six_a.school_year == school.years.get()
    assert level("2nde").order == 1  # the existing levels are left alone


def test_french_order_after_import(school):
    eleves = [
        Eleve(str(i), "", last, first, None, "20010018110", "2NDE 1")
        for i, (last, first) in enumerate(
            [("Nguyen", "Minh"), ("N'Diaye", "Awa"), ("Œuvray", "Paul"), ("Bénard", "Lucie")]
        )
    ]
    apply(school, siecle_xml(eleves))
    students = Student.objects.filter(school_class__name="2NDE 1")
    assert full_names(students) == ["Bénard Lucie", "N'Diaye Awa", "Nguyen Minh", "Œuvray Paul"]
