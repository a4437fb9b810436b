"""Generation jobs, the drafts the model writes, the worker's state and the schools' word lists."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    """One adapter the platform can draft with: where it is, what it came from, how it scored.

    The model card's adapter is the first version. A training run adds a candidate; promoting
    it makes it the only active version (workers load it at their next job); the one it
    replaces is retired, and rolling back makes it active again. Never deleted: drafts and
    feedback point at the version that wrote them.
    """

    class State(models.TextChoices):
        CANDIDATE = "candidate", "Proposée"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retirée"

    name = models.CharField("nom", max_length=100, unique=True)
    base_model = models.CharField(
        "modèle de base", max_length=300, help_text="Identifiant du Hub ou dossier local."
    )
    adapter = models.CharField(
        "adaptateur", max_length=500, help_text="Identifiant du Hub ou dossier local (LoRA)."
    )
    # sha256 over the adapter's weight files: two versions with one hash are one adapter.
    adapter_sha256 = models.CharField("empreinte des poids (SHA-256)", max_length=64, blank=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        verbose_name="version d'origine",
    )
    # The version this one replaced when it was last promoted: « Revenir à la version
    # précédente » makes it active again (a rollback leaves it as it is, so rolling back twice
    # walks back two promotions).
    replaced = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="version remplacée",
    )
    # Snapshot id, content hash and row counts (train / validation / test) of its data.
    training_data = models.JSONField("données d'entraînement", default=dict, blank=True)
    training_settings = models.JSONField("réglages d'entraînement", default=dict, blank=True)
    # The latest evaluation's figures against the version active then (learning app).
    evaluation = models.JSONField("évaluation", default=dict, blank=True)
    state = models.CharField("état", max_length=10, choices=State.choices, default=State.CANDIDATE)
    is_test_model = models.BooleanField("modèle de test", default=False)
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    promoted_at = models.DateTimeField("mise en service le", null=True, blank=True)
    retired_at = models.DateTimeField("retirée le", null=True, blank=True)

    class Meta:
        verbose_name = "version du modèle"
        verbose_name_plural = "versions du modèle"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"], condition=Q(state="active"), name="one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_state_display()})"


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
        "classes.TeachingAssignment",
        on_delete=models.CASCADE,
        related_name="generation_jobs",
        verbose_name="service d'enseignement",
    )
    term = models.ForeignKey(
        "classes.Term", on_delete=models.CASCADE, related_name="+", verbose_name="trimestre"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name="demandée par",
    )
    status = models.CharField("état", max_length=12, choices=Status.choices, default=Status.QUEUED)
    seed = models.BigIntegerField("graine aléatoire", null=True, blank=True)
    # French, for the teacher; the English reason goes to the logs and error_detail.
    error_message = models.TextField("message d'erreur (pour l'enseignant)", blank=True)
    error_detail = models.TextField("détail de l'erreur", blank=True)
    # Tasks sent for this job, and their deliveries: a task redelivered after a worker died
    # counts here, and the redeliveries are bounded.
    tasks_sent = models.PositiveIntegerField("tâches envoyées", default=0)
    deliveries = models.PositiveIntegerField("remises des tâches", default=0)
    worker_hostname = models.CharField("serveur de calcul", max_length=200, blank=True)
    # A worker's sign of life: each delivery, claim and lease renewal (every quarter lease).
    heartbeat_at = models.DateTimeField("dernier signe de vie", null=True, blank=True)
    # When a task for the job was last sent (creation, "Réessayer", recovery). The periodic
    # recovery (generation.tasks.recover_stalled_jobs) sends a stalled job again; `resends`
    # counts the times it did so while no worker showed life, and is bounded.
    sent_at = models.DateTimeField("envoyée le", null=True, blank=True)
    resends = models.PositiveSmallIntegerField("renvois", default=0)
    # The batch on the worker: decoding step `progress_step` of at most `progress_steps`
    # (the longest draft's tokens). A class is drafted in one batch: the bar moves with the
    # steps between two drafts, not only when a draft arrives.
    progress_step = models.PositiveIntegerField("étape de rédaction", default=0)
    progress_steps = models.PositiveIntegerField("étapes de rédaction", default=0)
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    started_at = models.DateTimeField("commencée le", null=True, blank=True)
    finished_at = models.DateTimeField("terminée le", null=True, blank=True)

    class Meta:
        verbose_name = "génération"
        verbose_name_plural = "générations"
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

    job = models.ForeignKey(
        GenerationJob, on_delete=models.CASCADE, related_name="drafts", verbose_name="génération"
    )
    student = models.ForeignKey(
        "classes.Student", on_delete=models.CASCADE, related_name="drafts", verbose_name="élève"
    )
    subject = models.ForeignKey(
        "classes.Subject", on_delete=models.PROTECT, related_name="+", verbose_name="discipline"
    )
    term = models.ForeignKey(
        "classes.Term", on_delete=models.CASCADE, related_name="+", verbose_name="trimestre"
    )
    status = models.CharField("état", max_length=10, choices=Status.choices, default=Status.PENDING)
    # The chat messages exactly as sent: pseudonymous by construction (no names, no ids).
    prompt_messages = models.JSONField("messages envoyés au modèle", default=list)
    prompt_version = models.CharField("version des consignes", max_length=40)
    text = models.TextField("texte", blank=True)
    raw_texts = models.JSONField(
        "textes générés", default=list, help_text="Every attempt, as generated."
    )
    flags = models.JSONField("alertes", default=list, help_text="Failed checks: [{code, message}].")
    attempts = models.PositiveSmallIntegerField("tentatives", default=0)
    model_base = models.CharField("modèle de base", max_length=300, blank=True)
    model_adapter = models.CharField("adaptateur du modèle", max_length=300, blank=True)
    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="version du modèle",
    )
    is_test_model = models.BooleanField("modèle de test", default=False)
    # The worker generating it (a lease): several GPU workers share a class, each claiming
    # batches; a claim older than the lease, or by a worker that restarted, is taken over.
    claimed_by = models.CharField("pris en charge par", max_length=200, blank=True)
    claimed_at = models.DateTimeField("pris en charge le", null=True, blank=True)
    claims = models.PositiveSmallIntegerField("prises en charge", default=0)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    generated_at = models.DateTimeField("généré le", null=True, blank=True)

    class Meta:
        verbose_name = "brouillon"
        verbose_name_plural = "brouillons"
        ordering = ["student__sort_key", "student_id"]
        constraints = [
            # A task delivered twice cannot write a student's draft twice.
            models.UniqueConstraint(fields=["job", "student"], name="one_draft_per_job_student")
        ]
        indexes = [models.Index(fields=["student", "subject", "term"])]

    def __str__(self) -> str:
        return f"Draft {self.pk} · {self.student_id} · {self.status}"


class WorkerState(models.Model):
    """What each generation worker says of its model: absent, loading, ready or failed."""

    class State(models.TextChoices):
        IDLE = "idle", "Démarré, modèle non chargé"
        # Checked when the worker starts (and before each job): no model files on its machine.
        MISSING = "missing", "Modèle absent"
        LOADING = "loading", "Chargement du modèle"
        READY = "ready", "Prêt"
        FAILED = "failed", "Échec du chargement"

    hostname = models.CharField("nom du serveur", max_length=200, unique=True)
    state = models.CharField("état", max_length=10, choices=State.choices, default=State.IDLE)
    model_info = models.JSONField("modèle", default=dict)
    detail = models.TextField("détail", blank=True)
    updated_at = models.DateTimeField("mis à jour le", auto_now=True)

    class Meta:
        verbose_name = "état du serveur de calcul"
        verbose_name_plural = "états des serveurs de calcul"
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return f"{self.hostname}: {self.state}"


class BannedPhrase(models.Model):
    """A school's additions to the wording that circulaire 99-104 bans (checked on drafts)."""

    school = models.ForeignKey(
        "classes.School",
        on_delete=models.CASCADE,
        related_name="banned_phrases",
        verbose_name="établissement",
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
        "classes.Student",
        on_delete=models.CASCADE,
        related_name="appreciations",
        verbose_name="élève",
    )
    subject = models.ForeignKey(
        "classes.Subject", on_delete=models.PROTECT, related_name="+", verbose_name="discipline"
    )
    term = models.ForeignKey(
        "classes.Term", on_delete=models.CASCADE, related_name="+", verbose_name="trimestre"
    )
    status = models.CharField(
        "état", max_length=10, choices=Status.choices, default=Status.GENERATED
    )
    text = models.TextField("texte", blank=True)
    draft = models.ForeignKey(
        Draft,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="brouillon",
    )
    # A draft that arrived while a human's text was final or returned: shown beside that text,
    # never in its place, until the teacher validates it or sets it aside.
    offered_draft = models.ForeignKey(
        Draft,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="nouveau brouillon proposé",
    )
    version = models.PositiveIntegerField("version", default=1)
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="validée par",
    )
    validated_at = models.DateTimeField("validée le", null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="approuvée par",
    )
    approved_at = models.DateTimeField("approuvée le", null=True, blank=True)
    return_comment = models.TextField("commentaire du renvoi", blank=True)
    returned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="renvoyée par",
    )
    returned_at = models.DateTimeField("renvoyée le", null=True, blank=True)
    updated_at = models.DateTimeField("modifiée le", auto_now=True)

    class Meta:
        verbose_name = "appréciation"
        verbose_name_plural = "appréciations"
        ordering = ["student__sort_key", "student_id"]
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
        Appreciation,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="feedback",
        verbose_name="appréciation",
    )
    draft = models.ForeignKey(
        Draft,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="feedback",
        verbose_name="brouillon",
    )
    school = models.ForeignKey(
        "classes.School", on_delete=models.CASCADE, related_name="+", verbose_name="établissement"
    )
    validated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="validée par",
    )
    validated_at = models.DateTimeField("validée le", auto_now_add=True)
    draft_text = models.TextField("texte du brouillon", blank=True)
    final_text = models.TextField("texte final")
    edited = models.BooleanField("modifiée", default=False)
    edit_distance = models.PositiveIntegerField("distance d'édition", default=0)
    seconds_spent = models.PositiveIntegerField("secondes passées", null=True, blank=True)
    flags = models.JSONField("alertes", default=list)
    prompt_messages = models.JSONField("messages envoyés au modèle", default=list)
    prompt_version = models.CharField("version des consignes", max_length=40, blank=True)
    model_base = models.CharField("modèle de base", max_length=300, blank=True)
    model_adapter = models.CharField("adaptateur du modèle", max_length=300, blank=True)
    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="version du modèle",
    )
    # The inputs as the dataset records them (no identity): subject, trimester, averages...
    inputs = models.JSONField("saisies", default=dict)
    rating = models.CharField("avis", max_length=4, choices=Rating.choices, blank=True)
    reason = models.CharField("motif", max_length=12, choices=Reason.choices, blank=True)

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
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name="demandé par",
    )
    school = models.ForeignKey(
        "classes.School", on_delete=models.CASCADE, related_name="+", verbose_name="établissement"
    )
    status = models.CharField("état", max_length=8, choices=Status.choices, default=Status.QUEUED)
    inputs = models.JSONField("saisies", default=dict)
    prompt_messages = models.JSONField("messages envoyés au modèle", default=list)
    prompt_version = models.CharField("version des consignes", max_length=40)
    text = models.TextField("texte", blank=True)
    flags = models.JSONField("alertes", default=list)
    attempts = models.PositiveSmallIntegerField("tentatives", default=0)
    is_test_model = models.BooleanField("modèle de test", default=False)
    model_version = models.ForeignKey(
        ModelVersion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="version du modèle",
    )
    error_message = models.TextField("message d'erreur", blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)

    class Meta:
        verbose_name = "brouillon rapide"
        verbose_name_plural = "brouillons rapides"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"QuickDraft {self.pk} · {self.status}"
