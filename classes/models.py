"""Schools, teachers (the user model), classes, students and their term inputs."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from common.scales import AVERAGE_MAX, RATING_MAX

from .collation import student_sort_key
from .text import GEPI_LOGIN_MAX_LENGTH, validate_gepi_login

# Hosts where a CAS server may be reached over plain http, when ENT_CAS_ALLOW_HTTP_LOCAL is on
# (tests and development: a CAS server started on this machine).
LOCAL_CAS_HOSTS = {"127.0.0.1", "localhost", "::1"}


def validate_cas_server_url(value: str) -> None:
    """An https address (a ticket is validated there: http would let anyone on the way forge
    the answer); http only for a CAS server on this machine in tests and development."""
    if not value:
        return
    parts = urlsplit(value)
    if parts.query or parts.fragment:
        raise ValidationError("L'adresse du serveur CAS ne doit contenir ni « ? » ni « # ».")
    if parts.scheme == "https" and parts.hostname:
        return
    local_http = (
        parts.scheme == "http"
        and parts.hostname in LOCAL_CAS_HOSTS
        and getattr(settings, "ENT_CAS_ALLOW_HTTP_LOCAL", False)
    )
    if not local_http:
        raise ValidationError(
            "L'adresse du serveur CAS doit commencer par https:// "
            "(par exemple https://ent.exemple.fr/cas/)."
        )


validate_cas_attribute = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$",
    "Nom d'attribut invalide : lettres, chiffres, « _ », « . », « : » ou « - ».",
)


class School(models.Model):
    class CasMatchField(models.TextChoices):
        USERNAME = "username", "Identifiant sur la plateforme"
        EMAIL = "email", "Adresse électronique"
        ENT_ID = "ent_id", "Identifiant ENT (fiche de l'enseignant)"

    name = models.CharField("nom", max_length=200)
    uai = models.CharField(
        "code UAI", max_length=8, blank=True, help_text="Identifiant national de l'établissement."
    )
    # Known so that the feedback dataset can leave out texts naming the school's town.
    city = models.CharField("commune", max_length=120, blank=True)
    appreciation_max_chars = models.PositiveSmallIntegerField(
        "nombre maximal de caractères d'une appréciation",
        default=255,
        help_text="Limite du modèle de bulletin (Pronote : réglage de l'établissement).",
    )
    requires_head_approval = models.BooleanField(
        "approbation du responsable de discipline requise", default=False
    )
    # Off unless the school's admin opts in: the school's validated texts (pseudonymous) may
    # then train the adapter every school shares.
    feedback_trains_shared_models = models.BooleanField(
        "les appréciations validées peuvent entraîner le modèle partagé",
        default=False,
        help_text=(
            "Si coché, les appréciations validées de l'établissement, sans nom ni identifiant,"
            " peuvent servir à entraîner les nouvelles versions du modèle, partagées par tous"
            " les établissements de la plateforme."
        ),
    )
    # Sign-in through the school's ENT (CAS). Empty address: passwords only.
    cas_server_url = models.URLField(
        "adresse du serveur CAS de l'ENT",
        max_length=300,
        blank=True,
        validators=[validate_cas_server_url],
        help_text=(
            "Par exemple https://ent.exemple.fr/cas/ (fournie par l'ENT). Vide : pas de "
            "connexion par l'ENT, seulement les mots de passe de la plateforme."
        ),
    )
    cas_user_attribute = models.CharField(
        "attribut CAS qui identifie l'enseignant",
        max_length=64,
        blank=True,
        validators=[validate_cas_attribute],
        help_text=(
            "Vide : l'identifiant CAS de l'utilisateur. Sinon le nom d'un attribut de la "
            "réponse CAS, par exemple mail ou ENTPersonLogin."
        ),
    )
    cas_match_field = models.CharField(
        "champ de la fiche enseignant comparé à cet attribut",
        max_length=20,
        choices=CasMatchField.choices,
        default=CasMatchField.USERNAME,
        help_text="Seuls les enseignants de l'établissement sont recherchés.",
    )

    class TypographicSpaces(models.TextChoices):
        # Values shared with generation.grammar (SPACES_*), which sets Grammalecte by them.
        NONE = "none", "Pas de règle (espace simple ou aucune)"
        NARROW = "narrow", "Espace fine insécable (U+202F)"
        NBSP = "nbsp", "Espace insécable (U+00A0)"

    # None by default: the texts and exports of a school stay as they were until it chooses.
    typographic_spaces = models.CharField(
        "espace avant « ; : ! ? »",
        max_length=10,
        choices=TypographicSpaces.choices,
        default=TypographicSpaces.NONE,
        help_text=(
            "La typographie française met une espace insécable avant ces signes. Le correcteur"
            " signale l'espace manquante selon ce choix et les brouillons du modèle la"
            " reçoivent ; « Pas de règle » ne vérifie rien."
        ),
    )

    class Meta:
        verbose_name = "établissement"
        verbose_name_plural = "établissements"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_ent_login(self) -> bool:
        return bool(self.cas_server_url)


class Subject(models.Model):
    """A subject; school=None for the subjects every school shares (data migration)."""

    school = models.ForeignKey(
        School,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="subjects",
        verbose_name="établissement",
    )
    name = models.CharField("nom", max_length=120)
    short_name = models.CharField("abréviation", max_length=20, blank=True)
    national_code = models.CharField(
        "code national",
        max_length=12,
        blank=True,
        db_index=True,
        help_text="Code de la matière dans les nomenclatures nationales (STS-web, « 030201 »).",
    )

    class Meta:
        verbose_name = "discipline"
        verbose_name_plural = "disciplines"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(school=None), name="subject_shared_name_unique"
            ),
            models.UniqueConstraint(fields=["school", "name"], name="subject_school_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class Level(models.Model):
    code = models.CharField("code", max_length=10, unique=True)
    name = models.CharField("nom", max_length=40)
    order = models.PositiveSmallIntegerField("ordre", default=0)

    class Meta:
        verbose_name = "niveau"
        verbose_name_plural = "niveaux"
        ordering = ["order"]

    def __str__(self) -> str:
        return self.name


class Teacher(AbstractUser):
    class Role(models.TextChoices):
        TEACHER = "teacher", "Enseignant"
        DEPARTMENT_HEAD = "department_head", "Responsable de discipline"
        SCHOOL_ADMIN = "school_admin", "Administrateur de l'établissement"

    school = models.ForeignKey(
        School,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="teachers",
        verbose_name="établissement",
    )
    role = models.CharField("rôle", max_length=20, choices=Role.choices, default=Role.TEACHER)
    # The teachers' panel compares drafts from two model versions, blind (learning app).
    on_panel = models.BooleanField("membre du panel d'évaluation", default=False)
    headed_subjects = models.ManyToManyField(
        Subject, blank=True, related_name="heads", verbose_name="disciplines dirigées"
    )
    # The teacher's identifier in the school's ENT, when the school matches ENT sign-ins on it
    # (School.cas_match_field); unique within a school.
    ent_id = models.CharField(
        "identifiant ENT",
        max_length=128,
        blank=True,
        help_text="Utilisé pour la connexion par l'ENT si l'établissement l'a choisi.",
    )
    # STS-web's INDIVIDU ID: stable across years, the key the yearly import (and the ENT
    # sign-in) matches an account on.
    sts_id = models.CharField(
        "identifiant STS-web",
        max_length=20,
        blank=True,
        db_index=True,
        help_text="Identifiant de l'enseignant dans STS-web (renseigné par l'import).",
    )

    class Meta:
        verbose_name = "enseignant"
        verbose_name_plural = "enseignants"
        ordering = ["last_name", "first_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["school", "ent_id"],
                condition=~Q(ent_id=""),
                name="teacher_school_ent_id_unique",
            ),
            models.UniqueConstraint(
                fields=["school", "sts_id"],
                condition=~Q(sts_id=""),
                name="teacher_school_sts_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    @property
    def is_department_head(self) -> bool:
        return self.role == self.Role.DEPARTMENT_HEAD

    @property
    def is_school_admin(self) -> bool:
        return self.role == self.Role.SCHOOL_ADMIN


class SchoolYear(models.Model):
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="years", verbose_name="établissement"
    )
    name = models.CharField("nom", max_length=20, help_text="Par exemple 2026-2027.")
    start_date = models.DateField("début")
    end_date = models.DateField("fin")

    class Meta:
        verbose_name = "année scolaire"
        verbose_name_plural = "années scolaires"
        ordering = ["-start_date"]
        constraints = [
            models.UniqueConstraint(fields=["school", "name"], name="year_school_name_unique"),
            models.CheckConstraint(
                condition=Q(end_date__gt=models.F("start_date")), name="year_dates_ordered"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Term(models.Model):
    school_year = models.ForeignKey(
        SchoolYear, on_delete=models.CASCADE, related_name="terms", verbose_name="année scolaire"
    )
    number = models.PositiveSmallIntegerField("trimestre")
    start_date = models.DateField("début")
    end_date = models.DateField("fin")
    is_closed = models.BooleanField(
        "clos", default=False, help_text="Un trimestre clos ne peut plus être modifié."
    )

    class Meta:
        verbose_name = "trimestre"
        verbose_name_plural = "trimestres"
        ordering = ["school_year", "number"]
        constraints = [
            models.UniqueConstraint(fields=["school_year", "number"], name="term_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1, number__lte=3), name="term_1_to_3"),
        ]

    def __str__(self) -> str:
        return f"{self.label} {self.school_year}"

    @property
    def label(self) -> str:
        return {1: "1er trimestre", 2: "2e trimestre", 3: "3e trimestre"}[self.number]


class SchoolClass(models.Model):
    school = models.ForeignKey(
        School, on_delete=models.CASCADE, related_name="classes", verbose_name="établissement"
    )
    school_year = models.ForeignKey(
        SchoolYear, on_delete=models.CASCADE, related_name="classes", verbose_name="année"
    )
    level = models.ForeignKey(Level, on_delete=models.PROTECT, verbose_name="niveau")
    name = models.CharField("nom", max_length=40, help_text="Par exemple « 2nde 3 ».")

    class Meta:
        verbose_name = "classe"
        verbose_name_plural = "classes"
        ordering = ["level__order", "name"]
        constraints = [
            models.UniqueConstraint(fields=["school_year", "name"], name="class_year_name_unique")
        ]

    def __str__(self) -> str:
        return self.name


NAME_FIELDS = ("last_name", "first_name")


class StudentQuerySet(models.QuerySet):
    """Bulk writes keep `sort_key` in step with the names (they bypass save())."""

    def bulk_create(self, objs, *args, **kwargs):
        objs = list(objs)
        for student in objs:
            student.sort_key = student.compute_sort_key()
        return super().bulk_create(objs, *args, **kwargs)

    def bulk_update(self, objs, fields, *args, **kwargs):
        objs = list(objs)
        fields = list(fields)
        if any(name in fields for name in NAME_FIELDS):
            for student in objs:
                student.sort_key = student.compute_sort_key()
            if "sort_key" not in fields:
                fields.append("sort_key")
        return super().bulk_update(objs, fields, *args, **kwargs)

    bulk_update.alters_data = True

    def update(self, **kwargs):
        if not any(name in kwargs for name in NAME_FIELDS):
            return super().update(**kwargs)
        # The new names may be expressions: compute each row's key from what was stored.
        pks = list(self.values_list("pk", flat=True))
        count = super().update(**kwargs)
        changed = list(Student.objects.filter(pk__in=pks).only("pk", *NAME_FIELDS))
        for student in changed:
            student.sort_key = student.compute_sort_key()
        Student.objects.bulk_update(changed, ["sort_key"])
        return count

    update.alters_data = True


class Student(models.Model):
    school_class = models.ForeignKey(
        SchoolClass, on_delete=models.CASCADE, related_name="students", verbose_name="classe"
    )
    last_name = models.CharField("nom", max_length=100)
    first_name = models.CharField("prénom", max_length=100)
    is_repeating = models.BooleanField("redoublant", default=False)
    external_id = models.CharField(
        "identifiant",
        max_length=64,
        blank=True,
        help_text="Identifiant de l'élève dans le logiciel de l'établissement (INE…).",
    )
    # Gepi's import of marks and appréciations matches its `login` only (not the INE).
    gepi_login = models.CharField(
        "login Gepi",
        max_length=GEPI_LOGIN_MAX_LENGTH,
        blank=True,
        validators=[validate_gepi_login],
        help_text="Login de l'élève dans Gepi (colonne IDENTIFIANT des listes exportées par"
        " Gepi) : le fichier d'import Gepi en a besoin.",
    )
    ine = models.CharField(
        "numéro INE",
        max_length=11,
        blank=True,
        db_index=True,
        help_text="Identifiant national élève.",
    )
    siecle_id = models.CharField(
        "identifiant SIECLE",
        max_length=20,
        blank=True,
        db_index=True,
        help_text="ELEVE_ID de l'export SIECLE (renseigné par l'import).",
    )
    birth_date = models.DateField("date de naissance", null=True, blank=True)
    # Never deleted when SIECLE stops listing them: their grades and appréciations stay.
    left_on = models.DateField(
        "sorti le",
        null=True,
        blank=True,
        help_text="Date de sortie de l'établissement (import SIECLE) ; vide s'il est présent.",
    )
    # Every list of students sorts on this (French order, classes.collation): the database's
    # own collation of names differs between SQLite and PostgreSQL servers.
    sort_key = models.BinaryField("clé de tri", default=b"", editable=False)

    objects = StudentQuerySet.as_manager()

    class Meta:
        verbose_name = "élève"
        verbose_name_plural = "élèves"
        ordering = ["sort_key", "pk"]

    def __str__(self) -> str:
        return f"{self.last_name} {self.first_name}"

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is None:
            self.sort_key = self.compute_sort_key()
        elif any(name in update_fields for name in NAME_FIELDS):
            self.sort_key = self.compute_sort_key()
            kwargs["update_fields"] = {*update_fields, "sort_key"}
        super().save(*args, **kwargs)

    def compute_sort_key(self) -> bytes:
        return student_sort_key(self.last_name, self.first_name)


class TeachingAssignment(models.Model):
    teacher = models.ForeignKey(
        Teacher, on_delete=models.CASCADE, related_name="assignments", verbose_name="enseignant"
    )
    school_class = models.ForeignKey(
        SchoolClass, on_delete=models.CASCADE, related_name="assignments", verbose_name="classe"
    )
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, verbose_name="discipline")

    class Meta:
        verbose_name = "service d'enseignement"
        verbose_name_plural = "services d'enseignement"
        ordering = ["school_class__level__order", "school_class__name", "subject__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["teacher", "school_class", "subject"], name="assignment_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.school_class} · {self.subject} · {self.teacher}"


class TermAssessment(models.Model):
    """One student's inputs in one subject for one term. Empty = not entered (or N/A)."""

    RATING_FIELDS = ("behaviour", "participation", "work")
    INPUT_FIELDS = ("average", *RATING_FIELDS)

    student = models.ForeignKey(
        Student, on_delete=models.CASCADE, related_name="assessments", verbose_name="élève"
    )
    subject = models.ForeignKey(Subject, on_delete=models.PROTECT, verbose_name="discipline")
    term = models.ForeignKey(
        Term, on_delete=models.CASCADE, related_name="assessments", verbose_name="trimestre"
    )
    average = models.DecimalField("moyenne /20", max_digits=4, decimal_places=2, null=True)
    behaviour = models.DecimalField("comportement /10", max_digits=3, decimal_places=1, null=True)
    participation = models.DecimalField(
        "participation /10", max_digits=3, decimal_places=1, null=True
    )
    work = models.DecimalField("travail /10", max_digits=3, decimal_places=1, null=True)
    updated_at = models.DateTimeField("modifiée le", auto_now=True)
    updated_by = models.ForeignKey(
        Teacher,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="modifiée par",
    )

    class Meta:
        verbose_name = "saisie du trimestre"
        verbose_name_plural = "saisies du trimestre"
        constraints = [
            models.UniqueConstraint(
                fields=["student", "subject", "term"], name="assessment_unique_per_term"
            ),
            models.CheckConstraint(
                condition=Q(average__isnull=True) | Q(average__gte=0, average__lte=AVERAGE_MAX),
                name="assessment_average_0_20",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{field}__isnull": True})
                    | Q(**{f"{field}__gte": 0, f"{field}__lte": RATING_MAX}),
                    name=f"assessment_{field}_0_10",
                )
                for field in ("behaviour", "participation", "work")
            ],
        ]

    def __str__(self) -> str:
        return f"{self.student} · {self.subject} · T{self.term.number}"

    @property
    def is_complete(self) -> bool:
        return all(getattr(self, name) is not None for name in self.INPUT_FIELDS)

    @property
    def missing_labels(self) -> list[str]:
        return [
            str(self._meta.get_field(name).verbose_name)
            for name in self.INPUT_FIELDS
            if getattr(self, name) is None
        ]
