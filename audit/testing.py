"""Test-settings helpers. Nothing here is used by the platform itself."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend


class RequestOptionalAxesBackend(AxesStandaloneBackend):
    """django-axes, except that an authenticate() call without a request passes through.

    Django's test `Client.login()` calls authenticate() without a request, which the real
    backend refuses (AxesBackendRequestParameterRequired). Every login through a view (the
    login page, the admin's) carries a request and is throttled exactly as in production.
    Only appreciation_site.settings.test uses this class.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
