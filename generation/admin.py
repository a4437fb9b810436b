"""The school admin extends the banned wording here; superusers inspect jobs and workers, and
choose the model version in service (a shared model: no school admin sees it)."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods

from classes.admin import SchoolScopedAdmin

from .models import BannedPhrase, GenerationJob, ModelVersion, WorkerState
from .services.versions import model_version_promote, model_version_roll_back


@admin.register(BannedPhrase)
class BannedPhraseAdmin(SchoolScopedAdmin):
    fields = ["phrase"]
    list_display = ["phrase"]
    search_fields = ["phrase"]


class ReadOnlyForSuperusers(admin.ModelAdmin):
    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(GenerationJob)
class GenerationJobAdmin(ReadOnlyForSuperusers):
    fields = [
        "assignment",
        "term",
        "requested_by",
        "status",
        "error_message",
        "error_detail",
        "tasks_sent",
        "deliveries",
        "worker_hostname",
        "heartbeat_at",
        "created_at",
        "started_at",
        "finished_at",
    ]
    list_display = ["pk", "assignment", "term", "status", "deliveries", "created_at"]
    list_filter = ["status"]


@admin.register(WorkerState)
class WorkerStateAdmin(ReadOnlyForSuperusers):
    fields = ["hostname", "state", "model_info", "detail", "updated_at"]
    list_display = ["hostname", "state", "updated_at"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Superusers only: the list of versions, « Mettre en service » on a version's page and
    « Revenir à la version précédente » on the list, each behind a confirmation page (POST)."""

    fields = [
        "name",
        "state",
        "base_model",
        "adapter",
        "adapter_sha256",
        "parent",
        "replaced",
        "is_test_model",
        "training_data",
        "training_settings",
        "evaluation",
        "created_at",
        "promoted_at",
        "retired_at",
    ]
    readonly_fields = [name for name in fields if name != "name"]
    list_display = ["name", "state", "parent", "is_test_model", "created_at", "promoted_at"]
    list_filter = ["state"]
    list_select_related = ["parent"]
    change_list_template = "admin/generation/modelversion/change_list.html"
    change_form_template = "admin/generation/modelversion/change_form.html"

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser  # the name only: the rest is read-only

    def has_add_permission(self, request) -> bool:
        return False  # a training run registers candidates; the first comes from the settings

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # drafts and feedback point at the version that wrote them

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/mettre-en-service/",
                view(require_http_methods(["GET", "POST"])(self.promote_view)),
                name="generation_modelversion_promote",
            ),
            path(
                "version-precedente/",
                view(require_http_methods(["GET", "POST"])(self.roll_back_view)),
                name="generation_modelversion_roll_back",
            ),
            *super().get_urls(),
        ]

    def _ensure_superuser(self, request) -> None:
        if not request.user.is_superuser:
            raise Http404("Not in this admin's scope")

    def promote_view(self, request, object_id):
        """GET: what will change, and a confirmation button; POST: put the version in service."""
        self._ensure_superuser(request)
        version = ModelVersion.objects.filter(pk=unquote(object_id)).first()
        if version is None:
            raise Http404("No such version")
        active = ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE).first()
        if request.method == "POST":
            try:
                model_version_promote(version=version, user=request.user, request=request)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"La version {version.name} est en service : chaque serveur de calcul la"
                    " charge au début de sa prochaine génération.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:generation_modelversion_changelist"))
        return self._confirmation(
            request,
            title=f"Mettre en service la version {version.name}",
            version=version,
            active=active,
            button="Oui, mettre en service",
        )

    def roll_back_view(self, request):
        """GET: which version comes back, and a confirmation button; POST: roll back."""
        self._ensure_superuser(request)
        active = (
            ModelVersion.objects.filter(state=ModelVersion.State.ACTIVE)
            .select_related("replaced")
            .first()
        )
        if request.method == "POST":
            try:
                previous = model_version_roll_back(user=request.user, request=request)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"La version {previous.name} est de nouveau en service : chaque serveur de"
                    " calcul la charge au début de sa prochaine génération.",
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(reverse("admin:generation_modelversion_changelist"))
        return self._confirmation(
            request,
            title="Revenir à la version précédente",
            version=active.replaced if active else None,
            active=active,
            button="Oui, revenir à cette version",
        )

    def _confirmation(self, request, *, title, version, active, button) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "version": version,
            "active": active,
            "button": button,
        }
        return TemplateResponse(request, "admin/generation/modelversion/confirmation.html", context)
