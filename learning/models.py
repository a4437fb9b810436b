"""Training runs, evaluations and the teachers' panel."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class TrainingRun(models.Model):
    """One fine-tuning of an adapter from the validated feedback; its result is a candidate."""

    class State(models.TextChoices):
        QUEUED = "queued", "En attente"
        RUNNING = "running", "En cours"
        CANCELLING = "cancelling", "Annulation demandée"
        CANCELLED = "cancelled", "Annulé"
        FAILED = "failed", "Échec"
        FINISHED = "finished", "Terminé"

    class Method(models.TextChoices):
        SFT = "sft", "Apprentissage supervisé (SFT)"
        DPO = "dpo", "Préférences (DPO)"

    class StartFrom(models.TextChoices):
        ACTIVE = "active", "La version active"
        BASE = "base", "Le modèle de base"

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="demandé par",
    )
    state = models.CharField("état", max_length=10, choices=State.choices, default=State.QUEUED)
    method = models.CharField("méthode", max_length=3, choices=Method.choices, default=Method.SFT)
    start_from = models.CharField(
        "point de départ", max_length=6, choices=StartFrom.choices, default=StartFrom.ACTIVE
    )
    parent_version = models.ForeignKey(
        "generation.ModelVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="version de départ",
    )
    result_version = models.ForeignKey(
        "generation.ModelVersion",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="version produite",
    )
    # Hyperparameters as given (epochs, learning rate, LoRA shape...).
    settings = models.JSONField("réglages", default=dict, blank=True)
    # Snapshot id, content hash, row counts per split, schools included.
    data = models.JSONField("données", default=dict, blank=True)
    # A local copy of the original dataset (eltorio/appreciation, Parquet or CSV), optional.
    original_dataset_path = models.CharField(
        "copie locale du jeu de données d'origine", max_length=500, blank=True
    )
    # {"step", "total_steps", "epoch", "loss": [[step, loss]...], "eval_loss": [[step, loss]...]}
    progress = models.JSONField("progression", default=dict, blank=True)
    output_dir = models.CharField("dossier de sortie", max_length=500, blank=True)
    error_message = models.TextField("message d'erreur", blank=True)
    claimed_by = models.CharField("pris en charge par", max_length=200, blank=True)
    claimed_at = models.DateTimeField("pris en charge le", null=True, blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    started_at = models.DateTimeField("commencé le", null=True, blank=True)
    finished_at = models.DateTimeField("terminé le", null=True, blank=True)

    class Meta:
        verbose_name = "entraînement"
        verbose_name_plural = "entraînements"
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"TrainingRun {self.pk} · {self.state}"


class ModelEvaluation(models.Model):
    """A candidate and a reference version (the active one) on the held-out test split."""

    class State(models.TextChoices):
        QUEUED = "queued", "En attente"
        RUNNING = "running", "En cours"
        FAILED = "failed", "Échec"
        FINISHED = "finished", "Terminée"

    candidate = models.ForeignKey(
        "generation.ModelVersion",
        on_delete=models.PROTECT,
        related_name="evaluations",
        verbose_name="version évaluée",
    )
    reference = models.ForeignKey(
        "generation.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="version de référence",
    )
    training_run = models.ForeignKey(
        TrainingRun,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="evaluations",
        verbose_name="entraînement",
    )
    state = models.CharField("état", max_length=10, choices=State.choices, default=State.QUEUED)
    seed = models.PositiveIntegerField("graine", default=0)
    # Per version: loss, share passing each check, chrF, edit distance, word counts.
    metrics = models.JSONField("mesures", default=dict, blank=True)
    # The promotion gate: {"passed": bool, "criteria": [{"name", "candidate", "reference",
    # "threshold", "passed"}]}.
    gate = models.JSONField("critères de mise en service", default=dict, blank=True)
    error_message = models.TextField("message d'erreur", blank=True)
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    finished_at = models.DateTimeField("terminée le", null=True, blank=True)

    class Meta:
        verbose_name = "évaluation"
        verbose_name_plural = "évaluations"
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"ModelEvaluation {self.pk} · {self.state}"


class PanelItem(models.Model):
    """Two drafts for the same pseudonymous inputs, from two versions, for the panel."""

    version_a = models.ForeignKey(
        "generation.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="version A",
    )
    version_b = models.ForeignKey(
        "generation.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name="version B",
    )
    evaluation = models.ForeignKey(
        ModelEvaluation,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="panel_items",
        verbose_name="évaluation",
    )
    # Subject, trimester, averages, ratings: no name, no identifier.
    inputs = models.JSONField("saisies", default=dict)
    prompt_messages = models.JSONField("messages envoyés au modèle", default=list)
    text_a = models.TextField("texte de la version A")
    text_b = models.TextField("texte de la version B")
    created_at = models.DateTimeField("créé le", auto_now_add=True)

    class Meta:
        verbose_name = "paire à comparer"
        verbose_name_plural = "paires à comparer"
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"PanelItem {self.pk}"


class PanelJudgement(models.Model):
    """One panel member's blind choice between the two drafts of an item."""

    class Verdict(models.TextChoices):
        # From version A's side, whatever order the texts were shown in.
        A_BETTER = "a_better", "A meilleure"
        EQUAL = "equal", "Équivalentes"
        B_BETTER = "b_better", "B meilleure"

    item = models.ForeignKey(
        PanelItem, on_delete=models.CASCADE, related_name="judgements", verbose_name="paire"
    )
    judge = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name="membre du panel",
    )
    # True when version A's text was shown on the right: the order is random per judgement.
    a_shown_second = models.BooleanField("A affichée en second", default=False)
    verdict = models.CharField("choix", max_length=8, choices=Verdict.choices)
    reason = models.TextField("motif", blank=True)
    created_at = models.DateTimeField("jugée le", auto_now_add=True)

    class Meta:
        verbose_name = "jugement du panel"
        verbose_name_plural = "jugements du panel"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["item", "judge"], name="one_judgement_per_item_judge")
        ]

    def __str__(self) -> str:
        return f"PanelJudgement {self.pk} · {self.verdict}"
