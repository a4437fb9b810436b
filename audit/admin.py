"""The audit log in the admin: read-only; a school admin sees their own school's events only."""

from __future__ import annotations

import json

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.utils.html import format_html

from .models import AuditEvent


def _is_school_admin(user) -> bool:
    return (
        user.is_active
        and user.is_staff
        and getattr(user, "is_school_admin", False)
        and user.school_id is not None
    )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "event", "actor_username", "school", "ip"]
    list_filter = ["event"]
    search_fields = ["actor_username", "ip"]
    date_hierarchy = "at"
    fields = ["at", "event", "actor", "actor_username", "school", "ip", "detail_pretty"]
    readonly_fields = fields
    list_select_related = ["school"]
    actions = None

    def _allowed(self, request) -> bool:
        return request.user.is_superuser or _is_school_admin(request.user)

    def has_module_permission(self, request) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # kept six months at least: see audit.services.audit_purge

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        if not _is_school_admin(request.user):
            return queryset.none()
        return queryset.filter(school_id=request.user.school_id)

    def get_list_filter(self, request):
        if request.user.is_superuser:
            return ["event", "school"]
        return ["event"]

    @admin.display(description="détails")
    def detail_pretty(self, obj: AuditEvent) -> str:
        text = json.dumps(obj.detail, ensure_ascii=False, indent=2, sort_keys=True)
        return format_html("<pre>{}</pre>", text)


# django-axes' login throttle: its own labels are translated in locale/fr; this column of its
# admin has no label at all (Django would title it "Status").
admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class FrenchAccessAttemptAdmin(AccessAttemptAdmin):
    @admin.display(description="état")
    def status(self, obj: AccessAttempt) -> str:
        return super().status(obj)
