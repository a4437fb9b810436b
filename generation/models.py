"""Generation jobs, the drafts the model writes, the worker's state and the schools' word lists."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class GenerationJob(models.Model):
    """One teacher's request: draft a class (or one student) for one assignment and term.

    Status lives here, not in Celery's results: `delay_on_commit` returns no task id.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "En attente"
        RUNNING = "running", "En cours"
        SUCCEEDED = "succeeded", "Terminée"
        FAILED = "failed", "Échec"
        CANCELLED = "cancelled", "Annulée"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    assignment = models.ForeignKey(
        "classes.TeachingAssignment", on_delete=models.CASCADE, related_name="generation_jobs"
    )
    term = models.ForeignKey("classes.Term", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    seed = models.BigIntegerField(null=True, blank=True)
    # French, for the teacher; the English reason goes to the logs and error_detail.
    error_message = models.TextField(blank=True)
    error_detail = models.TextField(blank=True)
    # Tasks sent for this job, and their deliveries: a task redelivered after a worker died
    # counts here, and the redeliveries are bounded.
    tasks_sent = models.PositiveIntegerField(default=0)
    deliveries = models.PositiveIntegerField(default=0)
    worker_hostname = models.CharField(max_length=200, blank=True)
    # A worker's sign of life: each delivery, claim and lease renewal (every quarter lease).
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When a task for the job was last sent (creation, "Réessayer", recovery). The periodic
    # recovery (generation.tasks.recover_stalled_jobs) sends a stalled job again; `resends`
    # counts the times it did so while no worker showed life, and is bounded.
    sent_at = models.DateTimeField(null=True, blank=True)
    resends = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A second click while a job runs starts no duplicate.
            models.UniqueConstraint(
                fields=["assignment", "term"],
                condition=Q(status__in=["queued", "running"]),
                name="one_active_job_per_assignment_term",
            )
        ]

    def __str__(self) -> str:
        return f"Job {self.pk} · {self.assignment} · T{self.term.number} · {self.status}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class Draft(models.Model):
    """What the model wrote for one student in one job. One per (job, student)."""

    class Status(models.TextChoices):
        PENDING = "pending", "En attente"
        RUNNING = "running", "En cours"
        GENERATED = "generated", "Générée"
        FAILED = "failed", "Échec"
        CANCELLED = "cancelled", "Annulée"

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="drafts")
    student = models.ForeignKey("classes.Student", on_delete=models.CASCADE, related_name="drafts")
    subject = models.ForeignKey("classes.Subject", on_delete=models.PROTECT, related_name="+")
    term = models.ForeignKey("classes.Term", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # The chat messages exactly as sent: pseudonymous by construction (no names, no ids).
    prompt_messages = models.JSONField(default=list)
    prompt_version = models.CharField(max_length=40)
    text = models.TextField(blank=True)
    raw_texts = models.JSONField(default=list, help_text="Every attempt, as generated.")
    flags = models.JSONField(default=list, help_text="Failed checks: [{code, message}].")
    attempts = models.PositiveSmallIntegerField(default=0)
    model_base = models.CharField(max_length=300, blank=True)
    model_adapter = models.CharField(max_length=300, blank=True)
    is_test_model = models.BooleanField(default=False)
    # The worker generating it (a lease): several GPU workers share a class, each claiming
    # batches; a claim older than the lease, or by a worker that restarted, is taken over.
    claimed_by = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claims = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    generated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["student__last_name", "student__first_name"]
        constraints = [
            # A task delivered twice cannot write a student's draft twice.
            models.UniqueConstraint(fields=["job", "student"], name="one_draft_per_job_student")
        ]
        indexes = [models.Index(fields=["student", "subject", "term"])]

    def __str__(self) -> str:
        return f"Draft {self.pk} · {self.student_id} · {self.status}"

    @property
    def word_count(self) -> int:
        return len(self.text.split())


class WorkerState(models.Model):
    """What each generation worker says of its model: loading, ready or failed."""

    class State(models.TextChoices):
        IDLE = "idle", "Démarré, modèle non chargé"
        LOADING = "loading", "Chargement du modèle"
        READY = "ready", "Prêt"
        FAILED = "failed", "Échec du chargement"

    hostname = models.CharField(max_length=200, unique=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.IDLE)
    model_info = models.JSONField(default=dict)
    detail = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.hostname}: {self.state}"


class BannedPhrase(models.Model):
    """A school's additions to the wording that circulaire 99-104 bans (checked on drafts)."""

    school = models.ForeignKey(
        "classes.School", on_delete=models.CASCADE, related_name="banned_phrases"
    )
    phrase = models.CharField("expression", max_length=120)

    class Meta:
        verbose_name = "expression interdite"
        verbose_name_plural = "expressions interdites"
        ordering = ["phrase"]
        constraints = [
            models.UniqueConstraint(fields=["school", "phrase"], name="banned_phrase_unique")
        ]

    def __str__(self) -> str:
        return self.phrase


class Appreciation(models.Model):
    """The appréciation of one student in one subject for one term: what a report card gets.

    The model only proposes (`draft`); the text reaches an export once a teacher validated it.
    `version` is checked on every save so two people never overwrite each other silently.
    """

    class Status(models.TextChoices):
        GENERATED = "generated", "À relire"
        VALIDATED = "validated", "Validée"
        APPROVED = "approved", "Approuvée"
        RETURNED = "returned", "Renvoyée"

    student = models.ForeignKey(
        "classes.Student", on_delete=models.CASCADE, related_name="appreciations"
    )
    subject = models.ForeignKey("classes.Subject", on_delete=models.PROTECT, related_name="+")
    term = models.ForeignKey("classes.Term", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.GENERATED)
    text = models.TextField(blank=True)
    draft = models.ForeignKey(
        Draft, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # A draft that arrived while a human's text was final or returned: shown beside that text,
    # never in its place, until the teacher validates it or sets it aside.
    offered_draft = models.ForeignKey(
        Draft, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version = models.PositiveIntegerField(default=1)
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    validated_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    return_comment = models.TextField(blank=True)
    returned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    returned_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["student__last_name", "student__first_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["student", "subject", "term"], name="one_appreciation_per_term"
            )
        ]

    def __str__(self) -> str:
        return f"{self.student} · T{self.term.number} · {self.status}"

    @property
    def is_final(self) -> bool:
        return self.status in (self.Status.VALIDATED, self.Status.APPROVED)

    @property
    def is_human_text(self) -> bool:
        """A teacher wrote or validated the text: no draft may take its place."""
        return self.status in HUMAN_TEXT_STATUSES


HUMAN_TEXT_STATUSES = (
    Appreciation.Status.VALIDATED,
    Appreciation.Status.APPROVED,
    Appreciation.Status.RETURNED,
)


class FinalTexts(models.TextChoices):
    """What a class generation does for the students whose text a human wrote."""

    OFFER = "offer", "proposer un nouveau brouillon à côté du texte de l'enseignant"
    SKIP = "skip", "ne pas y toucher"


class Feedback(models.Model):
    """One validation: the model's draft against the teacher's final text.

    The dataset for the next adapter. Pseudonymous: no name, no identifier; the link to the
    appreciation (and so to the student) is cut when a student's data is erased.
    Kept at least 6 months (AI Act, art. 26 logs).
    """

    class Rating(models.TextChoices):
        UP = "up", "Pertinente"
        DOWN = "down", "À revoir"

    class Reason(models.TextChoices):
        TOO_LONG = "too_long", "Trop long"
        TONE = "tone", "Ton"
        MISREADING = "misreading", "Contresens"
        STYLE = "style", "Style"
        WRONG_FACTS = "wrong_facts", "Faits inexacts"

    appreciation = models.ForeignKey(
        Appreciation, on_delete=models.SET_NULL, null=True, blank=True, related_name="feedback"
    )
    draft = models.ForeignKey(
        Draft, on_delete=models.SET_NULL, null=True, blank=True, related_name="feedback"
    )
    school = models.ForeignKey("classes.School", on_delete=models.CASCADE, related_name="+")
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    validated_at = models.DateTimeField(auto_now_add=True)
    draft_text = models.TextField(blank=True)
    final_text = models.TextField()
    edited = models.BooleanField(default=False)
    edit_distance = models.PositiveIntegerField(default=0)
    seconds_spent = models.PositiveIntegerField(null=True, blank=True)
    flags = models.JSONField(default=list)
    prompt_messages = models.JSONField(default=list)
    prompt_version = models.CharField(max_length=40, blank=True)
    model_base = models.CharField(max_length=300, blank=True)
    model_adapter = models.CharField(max_length=300, blank=True)
    # The inputs as the dataset records them (no identity): subject, trimester, averages...
    inputs = models.JSONField(default=dict)
    rating = models.CharField(max_length=4, choices=Rating.choices, blank=True)
    reason = models.CharField(max_length=12, choices=Reason.choices, blank=True)

    class Meta:
        ordering = ["-validated_at"]
        verbose_name = "retour sur une appréciation"
        verbose_name_plural = "retours sur les appréciations"

    def __str__(self) -> str:
        return f"Feedback {self.pk} ({'edited' if self.edited else 'as is'})"


class QuickDraft(models.Model):
    """The model card's single form: a draft from inputs alone, no student record."""

    class Status(models.TextChoices):
        QUEUED = "queued", "En attente"
        DONE = "done", "Terminé"
        FAILED = "failed", "Échec"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    school = models.ForeignKey("classes.School", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    inputs = models.JSONField(default=dict)
    prompt_messages = models.JSONField(default=list)
    prompt_version = models.CharField(max_length=40)
    text = models.TextField(blank=True)
    flags = models.JSONField(default=list)
    attempts = models.PositiveSmallIntegerField(default=0)
    is_test_model = models.BooleanField(default=False)
    error_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"QuickDraft {self.pk} · {self.status}"
