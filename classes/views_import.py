"""Placeholder replaced by the import feature (upload, preview, confirm)."""

from django.http import Http404, HttpRequest, HttpResponse


def import_upload(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    raise Http404


def import_confirm(request: HttpRequest, assignment_pk: int, term_pk: int) -> HttpResponse:
    raise Http404
