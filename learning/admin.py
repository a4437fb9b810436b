from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from .models import TrainingRun


# --- Training runs (superusers; agent "training") ----------------------------------------------
@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Read-only: runs are started, followed and cancelled on the training page."""

    change_list_template = "admin/learning/trainingrun/change_list.html"
    fields = [
        "state",
        "method",
        "start_from",
        "parent_version",
        "result_version",
        "requested_by",
        "settings",
        "data",
        "original_dataset_path",
        "progress",
        "output_dir",
        "error_message",
        "claimed_by",
        "claimed_at",
        "created_at",
        "started_at",
        "finished_at",
    ]
    readonly_fields = fields
    list_display = ["pk", "state", "method", "start_from", "result_version", "created_at"]
    list_filter = ["state", "method"]

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

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "training_page": format_html(
                '<a href="{}" class="addlink">Lancer ou suivre un entraînement</a>',
                reverse("learning:training"),
            ),
        }
        return super().changelist_view(request, extra_context)
