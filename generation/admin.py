"""The school admin extends the banned wording here; superusers inspect jobs and workers."""

from django.contrib import admin

from classes.admin import SchoolScopedAdmin

from .models import BannedPhrase, GenerationJob, WorkerState


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
