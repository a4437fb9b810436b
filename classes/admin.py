"""The school admin manages their own school here; every list and choice is scoped to it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from audit.models import AuditEvent
from audit.services import audit_record

from .invitations import invitation_days, invitation_url, send_invitation
from .models import (
    Level,
    School,
    SchoolClass,
    SchoolYear,
    Student,
    Subject,
    Teacher,
    TeachingAssignment,
    Term,
    TermAssessment,
)


def _is_school_admin(request) -> bool:
    user = request.user
    return user.is_active and user.is_staff and user.role == Teacher.Role.SCHOOL_ADMIN


def _related_only(model, item):
    if isinstance(item, str):
        try:
            field = model._meta.get_field(item)
        except FieldDoesNotExist:
            return item
        if field.is_relation:
            return (item, admin.RelatedOnlyFieldListFilter)
    return item


class SchoolScopedAdmin(admin.ModelAdmin):
    """Rows of the admin's own school only; superusers see everything."""

    school_path = "school"

    def _allowed(self, request) -> bool:
        return request.user.is_superuser or (
            _is_school_admin(request) and request.user.school_id is not None
        )

    def has_module_permission(self, request) -> bool:
        return self._allowed(request)

    def has_view_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_add_permission(self, request) -> bool:
        return self._allowed(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return self._allowed(request)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(**{self.school_path: request.user.school_id})

    def get_list_filter(self, request):
        """A related-field filter lists every row of its table (other schools' classes,
        subjects, terms, with their ids): for a school admin, only the rows that appear in
        their own scoped list (Django's RelatedOnlyFieldListFilter)."""
        filters = super().get_list_filter(request)
        if request.user.is_superuser:
            return filters
        return [_related_only(self.model, item) for item in filters]

    def _object_in_scope_or_404(self, request, object_id) -> None:
        # The same 404 for another school's object as for a missing one (Django's admin
        # would redirect to its index with "doesn't exist", naming nothing, but not a 404).
        if object_id and not self.get_queryset(request).filter(pk=unquote(object_id)).exists():
            raise Http404("Not in this admin's scope")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self._object_in_scope_or_404(request, object_id)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        self._object_in_scope_or_404(request, object_id)
        return super().delete_view(request, object_id, extra_context)

    def history_view(self, request, object_id, extra_context=None):
        self._object_in_scope_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if not request.user.is_superuser:
            school_id = request.user.school_id
            scoped = {
                "school": School.objects.filter(pk=school_id),
                "school_year": SchoolYear.objects.filter(school_id=school_id),
                "school_class": SchoolClass.objects.filter(school_id=school_id),
                "teacher": Teacher.objects.filter(school_id=school_id),
                "student": Student.objects.filter(school_class__school_id=school_id),
                "subject": Subject.objects.filter(Q(school=None) | Q(school_id=school_id)),
                "term": Term.objects.filter(school_year__school_id=school_id),
            }
            if db_field.name in scoped:
                kwargs["queryset"] = scoped[db_field.name]
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if not request.user.is_superuser and db_field.name == "headed_subjects":
            school_id = request.user.school_id
            kwargs["queryset"] = Subject.objects.filter(Q(school=None) | Q(school_id=school_id))
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and self.school_path == "school":
            obj.school_id = request.user.school_id
        super().save_model(request, obj, form, change)


@admin.register(School)
class SchoolAdmin(SchoolScopedAdmin):
    school_path = "pk"
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "city",
                    "uai",
                    "appreciation_max_chars",
                    "requires_head_approval",
                    "typographic_spaces",
                ]
            },
        ),
        (
            "Amélioration du modèle partagé",
            {
                "fields": ["feedback_trains_shared_models"],
                "description": (
                    "À chaque validation, la plateforme garde le brouillon du modèle et le texte"
                    " final de l'enseignant, sans nom ni identifiant d'élève. Si vous cochez la"
                    " case, ces paires peuvent servir à entraîner de nouvelles versions du"
                    " modèle, partagées par tous les établissements de la plateforme ; une"
                    " version n'est mise en service qu'après évaluation. Décochée par défaut :"
                    " sans votre accord, les textes de l'établissement n'entraînent aucun"
                    " modèle. Vous pouvez la décocher à tout moment : les prochains"
                    " entraînements ne les utiliseront plus (les versions déjà entraînées"
                    " restent ce qu'elles sont)."
                ),
            },
        ),
        (
            "Connexion par l'ENT (CAS)",
            {
                "fields": ["cas_server_url", "cas_user_attribute", "cas_match_field"],
                "description": (
                    "Les enseignants se connectent avec leur compte ENT ; la plateforme "
                    "retrouve leur fiche dans l'établissement (elle n'en crée jamais). "
                    "Les mots de passe de la plateforme restent utilisables."
                ),
            },
        ),
    ]
    list_display = ["name", "uai", "appreciation_max_chars", "requires_head_approval"]
    change_form_template = "admin/classes/school/change_form.html"

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/import-siecle-sts/",
                self.admin_site.admin_view(self.directory_import),
                name="classes_school_directory_import",
            )
        ]
        return urls + super().get_urls()

    def directory_import(self, request, object_id):
        """SIECLE / STS-web import into this school (classes.views_directory)."""
        from .views_directory import directory_import_view

        self._object_in_scope_or_404(request, object_id)
        school = self.get_queryset(request).filter(pk=unquote(object_id)).first()
        if school is None or not self.has_change_permission(request, school):
            raise Http404("Not in this admin's scope")
        if request.method not in ("GET", "POST"):
            return HttpResponse(status=405)
        return directory_import_view(self, request, school)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "feedback_trains_shared_models" in form.changed_data:
            # Whether a school's texts train the model every school shares: audited.
            audit_record(
                event=AuditEvent.Event.TRAINING_OPT_IN_CHANGED,
                request=request,
                school=obj,
                enabled=obj.feedback_trains_shared_models,
            )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "cas_server_url":
            kwargs["assume_scheme"] = "https"  # "ent.exemple.fr/cas/" means https
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def has_add_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(Teacher)
class TeacherAdmin(SchoolScopedAdmin, UserAdmin):
    list_display = ["username", "last_name", "first_name", "email", "role", "is_active"]
    list_filter = ["role", "is_active"]
    search_fields = ["username", "last_name", "first_name", "email", "ent_id", "sts_id"]
    filter_horizontal = ["headed_subjects"]
    actions = ["invitation_links", "email_invitations"]
    fieldsets = [
        (None, {"fields": ["username", "password"]}),
        ("Identité", {"fields": ["last_name", "first_name", "email", "ent_id"]}),
        (
            "Rôle",
            {"fields": ["school", "role", "headed_subjects", "on_panel", "is_active", "is_staff"]},
        ),
        ("Annuaire", {"fields": ["sts_id"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": [
                    "username",
                    "last_name",
                    "first_name",
                    "email",
                    "school",
                    "role",
                    "usable_password",
                    "password1",
                    "password2",
                ],
            },
        )
    ]
    readonly_fields = ["last_login", "date_joined"]

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if request.user.is_superuser and obj is not None:
            return [*fieldsets, ("Super-utilisateur", {"fields": ["is_superuser"]})]
        return fieldsets

    # A school admin manages the teachers and department heads of their school, and sees
    # their own account; never an account with more power (superusers, other school admins),
    # never their own role, rights or school.
    MANAGED_ROLES = (Teacher.Role.TEACHER, Teacher.Role.DEPARTMENT_HEAD)

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(is_superuser=False).filter(
            Q(role__in=self.MANAGED_ROLES, is_staff=False) | Q(pk=request.user.pk)
        )

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if request.user.is_superuser:
            return readonly
        readonly.append("is_staff")  # access to this admin: given by a superuser only
        if obj is not None and obj.pk == request.user.pk:
            readonly += ["role", "school", "is_active"]
        return readonly

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "role" and not request.user.is_superuser:
            kwargs["choices"] = [
                (value, label) for value, label in db_field.choices if value in self.MANAGED_ROLES
            ]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    @admin.action(
        description="Liens d'invitation (choisir son mot de passe)", permissions=["change"]
    )
    def invitation_links(self, request, queryset):
        """A page of links, one per selected account, for the admin to copy or send."""
        teachers = list(queryset.order_by("last_name", "first_name"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Liens d'invitation",
            "opts": self.model._meta,
            "invitations": [(t, invitation_url(request, t)) for t in teachers],
            "invitation_days": invitation_days(),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/classes/teacher/invitations.html", context)

    @admin.action(description="Envoyer l'invitation par courriel", permissions=["change"])
    def email_invitations(self, request, queryset):
        sent = missing = 0
        for teacher in queryset.select_related("school"):
            if send_invitation(request, teacher):
                sent += 1
            else:
                missing += 1
        self.message_user(
            request, f"{sent} invitation(s) envoyée(s) par courriel.", messages.SUCCESS
        )
        if missing:
            self.message_user(
                request,
                f"{missing} compte(s) sans adresse électronique : copiez leur lien "
                "(« Liens d'invitation »).",
                messages.WARNING,
            )

    def user_change_password(self, request, id, form_url=""):
        # The user admin's own view takes the object from get_queryset: made explicit, an
        # account out of scope is the same 404 as a missing one.
        self._object_in_scope_or_404(request, id)
        return super().user_change_password(request, id, form_url)


@admin.register(Subject)
class SubjectAdmin(SchoolScopedAdmin):
    fields = ["name", "short_name", "national_code"]
    list_display = ["name", "short_name", "national_code", "school"]

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(Q(school=None) | Q(school_id=request.user.school_id))

    def has_change_permission(self, request, obj=None) -> bool:
        # Shared subjects (the model card's) belong to no school: only a superuser edits them.
        if obj is not None and obj.school_id is None:
            return request.user.is_superuser
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if obj is not None and obj.school_id is None:
            return request.user.is_superuser
        return super().has_delete_permission(request, obj)


@admin.register(Level)
class LevelAdmin(admin.ModelAdmin):
    fields = ["code", "name", "order"]
    list_display = ["name", "code", "order"]

    def has_module_permission(self, request) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser or _is_school_admin(request)


class TermInline(admin.TabularInline):
    model = Term
    fields = ["number", "start_date", "end_date", "is_closed"]
    extra = 0
    max_num = 3


@admin.register(SchoolYear)
class SchoolYearAdmin(SchoolScopedAdmin):
    fields = ["name", "start_date", "end_date"]
    list_display = ["name", "start_date", "end_date"]
    inlines = [TermInline]


@admin.register(Term)
class TermAdmin(SchoolScopedAdmin):
    school_path = "school_year__school"
    fields = ["school_year", "number", "start_date", "end_date", "is_closed"]
    list_display = ["__str__", "start_date", "end_date", "is_closed"]
    list_editable = ["is_closed"]


class StudentInline(admin.TabularInline):
    model = Student
    fields = ["last_name", "first_name", "is_repeating", "external_id", "gepi_login", "left_on"]
    extra = 0


class AssignmentInline(admin.TabularInline):
    model = TeachingAssignment
    fields = ["teacher", "subject"]
    extra = 0

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        school_id = request.user.school_id
        if not request.user.is_superuser:
            if db_field.name == "teacher":
                kwargs["queryset"] = Teacher.objects.filter(school_id=school_id)
            elif db_field.name == "subject":
                kwargs["queryset"] = Subject.objects.filter(Q(school=None) | Q(school_id=school_id))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(SchoolClass)
class SchoolClassAdmin(SchoolScopedAdmin):
    fields = ["name", "level", "school_year"]
    list_display = ["name", "level", "school_year"]
    list_filter = ["level", "school_year"]
    inlines = [AssignmentInline, StudentInline]


@admin.register(Student)
class StudentAdmin(SchoolScopedAdmin):
    school_path = "school_class__school"
    fields = [
        "last_name",
        "first_name",
        "school_class",
        "is_repeating",
        "external_id",
        "gepi_login",
        "ine",
        "siecle_id",
        "birth_date",
        "left_on",
    ]
    list_display = ["name", "first_name", "school_class", "is_repeating", "left_on"]
    list_filter = ["school_class", ("left_on", admin.EmptyFieldListFilter)]
    search_fields = ["last_name", "first_name", "external_id", "gepi_login", "ine"]

    # Sorting the column sorts as a class list (French order), not by code point.
    @admin.display(description="nom", ordering="sort_key")
    def name(self, obj: Student) -> str:
        return obj.last_name


@admin.register(TeachingAssignment)
class TeachingAssignmentAdmin(SchoolScopedAdmin):
    school_path = "school_class__school"
    fields = ["teacher", "school_class", "subject"]
    list_display = ["school_class", "subject", "teacher"]
    list_filter = ["subject", "school_class"]


@admin.register(TermAssessment)
class TermAssessmentAdmin(SchoolScopedAdmin):
    school_path = "student__school_class__school"
    fields = ["student", "subject", "term", "average", "behaviour", "participation", "work"]
    list_display = ["student", "subject", "term", "average", "behaviour", "participation", "work"]
    list_filter = ["subject", "term"]
    search_fields = ["student__last_name", "student__first_name"]
