"""Site-wide response headers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


class NoStoreWhenSignedInMiddleware:
    """Every page a signed-in user gets may hold students' data (names, grades, texts, files):
    no browser or proxy may keep a copy (`Cache-Control: no-store`), e.g. on a shared computer
    in the staff room after the teacher signed out."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            add_never_cache_headers(response)
        return response
