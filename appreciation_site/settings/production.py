"""Production: every secret from the environment, HTTPS only."""

from .base import *  # noqa: F403
from .base import MIDDLEWARE, env

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# The `preload` directive commits to nothing until the domain is submitted to hstspreload.org
# (an operator's decision); on by default so `check --deploy` is clean (security.W021).
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Security (issue 6) -----------------------------------------------------------------------
# docker-compose publishes the web server on 127.0.0.1 only: the host's TLS reverse proxy is the
# one proxy in front of Django, and it appends the client's address to X-Forwarded-For (nginx:
# proxy_add_x_forwarded_for). The login throttling and the audit log read the address there.
# Set 0 when Django is reached directly, 2 behind two proxies.
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=1)
# An ENT's CAS server is always reached over https in production.
ENT_CAS_ALLOW_HTTP_LOCAL = False

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MIDDLEWARE = list(MIDDLEWARE)
