"""Receivers that feed the audit log: logins, failures, lockouts, logouts, rights changes.

Connected in AuditConfig.ready(). A rights change (role, staff/superuser flags, active flag,
school, headed subjects) is recorded after the save, with the user who made it when it comes
from a request (AuditContextMiddleware), else with no actor (shell, management command).
"""

from __future__ import annotations

from django.contrib.auth import BACKEND_SESSION_KEY, get_user_model
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed, post_save, pre_save
from django.utils.module_loading import import_string

from .middleware import current_request
from .models import AuditEvent
from .services import USERNAME_MAX, audit_record

# Fields of the user model whose change is a change of rights.
WATCHED_FIELDS = ("role", "is_staff", "is_superuser", "is_active", "school_id")
_WATCHED_NAMES = {"role", "is_staff", "is_superuser", "is_active", "school", "school_id"}
_DISPATCH = "audit."


def _clean_username(value) -> str:
    text = "" if value is None else str(value)
    return "".join(ch for ch in text if ch.isprintable())[:USERNAME_MAX]


def _school_of_username(username: str):
    if not username:
        return None
    user_model = get_user_model()
    return (
        user_model.objects.filter(**{user_model.USERNAME_FIELD: username})
        .values_list("school_id", flat=True)
        .first()
    )


def _login_method(request, user) -> str:
    """ "password", or the backend's `login_method` ("ent" for a sign-in through the ENT).

    Django's login() stores the backend in the session before sending the signal."""
    session = getattr(request, "session", None)
    backend_path = (session.get(BACKEND_SESSION_KEY) if session is not None else None) or getattr(
        user, "backend", None
    )
    if not backend_path:
        return "password"
    return getattr(import_string(backend_path), "login_method", "password")


def on_logged_in(sender, request, user, **kwargs) -> None:
    method = _login_method(request, user)
    audit_record(event=AuditEvent.Event.LOGIN, actor=user, request=request, method=method)


def on_logged_out(sender, request, user, **kwargs) -> None:
    if user is None or not getattr(user, "is_authenticated", False):
        return
    audit_record(event=AuditEvent.Event.LOGOUT, actor=user, request=request)


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """The username typed is kept, never the password (Django has already masked it)."""
    user_model = get_user_model()
    username = _clean_username(
        credentials.get(user_model.USERNAME_FIELD, credentials.get("username"))
    )
    audit_record(
        event=AuditEvent.Event.LOGIN_FAILED,
        actor=None,
        actor_username=username,
        request=request,
        school=_school_of_username(username),
        username=username,
        locked_out=bool(getattr(request, "axes_locked_out", False)),
    )


def on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    username = _clean_username(username)
    audit_record(
        event=AuditEvent.Event.LOCKED_OUT,
        actor=None,
        actor_username=username,
        request=request,
        school=_school_of_username(username),
        username=username,
    )


def _request_actor():
    request = current_request()
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return request, user
    return request, None


def _record_rights_change(*, target, changes: dict) -> None:
    request, actor = _request_actor()
    audit_record(
        event=AuditEvent.Event.ROLE_CHANGED,
        actor=actor,
        request=request,
        # Whose rights changed decides the school that sees the event, not who changed them.
        school=target.school_id,
        target_id=target.pk,
        target_username=target.get_username(),
        changes=changes,
        path=request.path if request is not None else "",
    )


def _note_password_change(sender, instance, update_fields) -> None:
    """A password set on an existing account, by its owner or by an admin (never the hash)."""
    if instance.pk is None or instance._state.adding:
        return
    if update_fields is not None and "password" not in update_fields:
        return
    request = current_request()
    match = getattr(request, "resolver_match", None)
    if match is not None and match.url_name == "login":
        return  # Django re-hashing a password at login (a stronger hasher): not a change
    previous = sender.objects.filter(pk=instance.pk).values_list("password", flat=True).first()
    if previous is not None and previous != instance.password:
        instance._audit_password_changed = True


def before_user_save(sender, instance, raw=False, update_fields=None, **kwargs) -> None:
    if raw:
        return
    _note_password_change(sender, instance, update_fields)
    if update_fields is not None and not (set(update_fields) & _WATCHED_NAMES):
        return  # e.g. last_login on every login
    previous = None
    if instance.pk is not None and not instance._state.adding:
        previous = sender.objects.filter(pk=instance.pk).values(*WATCHED_FIELDS).first()
    if previous is None:
        default_role = sender._meta.get_field("role").default
        granted = (
            getattr(instance, "role", default_role) != default_role
            or instance.is_staff
            or instance.is_superuser
        )
        if granted:
            instance._audit_changes = {
                "created": True,
                **{name: [None, getattr(instance, name)] for name in WATCHED_FIELDS},
            }
        return
    changes = {
        name: [previous[name], getattr(instance, name)]
        for name in WATCHED_FIELDS
        if previous[name] != getattr(instance, name)
    }
    if changes:
        instance._audit_changes = changes


def after_user_save(sender, instance, raw=False, **kwargs) -> None:
    changes = instance.__dict__.pop("_audit_changes", None)
    if changes and not raw:
        _record_rights_change(target=instance, changes=changes)
    if instance.__dict__.pop("_audit_password_changed", False) and not raw:
        request, actor = _request_actor()
        audit_record(
            event=AuditEvent.Event.PASSWORD_CHANGED,
            actor=actor,
            request=request,
            school=instance.school_id,
            target_id=instance.pk,
            target_username=instance.get_username(),
            by_owner=actor is not None and actor.pk == instance.pk,
            path=request.path if request is not None else "",
        )


def headed_subjects_changed(sender, instance, action, reverse, model, pk_set, **kwargs) -> None:
    """Teacher.headed_subjects, from either side (teacher.headed_subjects / subject.heads)."""
    user_model = get_user_model()
    if action == "pre_clear":
        related = instance.heads if reverse else instance.headed_subjects
        instance._audit_cleared = set(related.values_list("pk", flat=True))
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        pk_set = instance.__dict__.pop("_audit_cleared", set())
    if not pk_set:
        return
    key = "added" if action == "post_add" else "removed"
    if reverse:  # instance is a Subject, pk_set are users
        for teacher in user_model.objects.filter(pk__in=pk_set):
            _record_rights_change(
                target=teacher,
                changes={"headed_subjects": {key: [{"id": instance.pk, "name": instance.name}]}},
            )
    else:
        subjects = [{"id": s.pk, "name": s.name} for s in model.objects.filter(pk__in=pk_set)]
        _record_rights_change(target=instance, changes={"headed_subjects": {key: subjects}})


def connect() -> None:
    from axes.signals import user_locked_out

    user_model = get_user_model()
    user_logged_in.connect(on_logged_in, dispatch_uid=_DISPATCH + "logged_in")
    user_logged_out.connect(on_logged_out, dispatch_uid=_DISPATCH + "logged_out")
    user_login_failed.connect(on_login_failed, dispatch_uid=_DISPATCH + "login_failed")
    user_locked_out.connect(on_locked_out, dispatch_uid=_DISPATCH + "locked_out")
    pre_save.connect(before_user_save, sender=user_model, dispatch_uid=_DISPATCH + "pre_save")
    post_save.connect(after_user_save, sender=user_model, dispatch_uid=_DISPATCH + "post_save")
    m2m_changed.connect(
        headed_subjects_changed,
        sender=user_model.headed_subjects.through,
        dispatch_uid=_DISPATCH + "headed_subjects",
    )
