"""Development: `make run` on a laptop or a fresh machine."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-only-not-secret-change-me-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

# A CAS server started on this machine (django-cas-server) may be used over http.
ENT_CAS_ALLOW_HTTP_LOCAL = env.bool("ENT_CAS_ALLOW_HTTP_LOCAL", default=True)
