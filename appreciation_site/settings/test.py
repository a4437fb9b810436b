"""The test suite: PostgreSQL and Redis when their URLs are set, else SQLite and memory."""

import os

from .base import *  # noqa: F403
from .base import CELERY_BROKER_TRANSPORT_OPTIONS, REDIS_URL, env

SECRET_KEY = "test-only-secret"  # noqa: S105
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if not REDIS_URL:
    # In-process broker: the test worker runs in a thread of the test process.
    CELERY_BROKER_URL = "memory://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = dict(CELERY_BROKER_TRANSPORT_OPTIONS)
    # A separate Redis database keeps test runs away from a developer's running platform.
    CELERY_BROKER_URL = env("TEST_REDIS_URL", default=REDIS_URL)

# Serve static files from the finders; no collectstatic before the tests.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # A file, not shared-cache memory: the test worker thread writes while requests read, and
    # shared-cache SQLite locks whole tables ("database table is locked").
    # One file per test process: parallel runs (a developer and CI) never share it.
    VAR_DIR.mkdir(exist_ok=True)  # noqa: F405  (a fresh clone has no var/ yet)
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
    DATABASES["default"]["OPTIONS"] = {  # noqa: F405
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }

# --- Security (issue 6): django-axes stays on -------------------------------------------------
# Client.login() authenticates without a request, which AxesStandaloneBackend refuses; this
# subclass lets that call through and throttles every login that goes through a view, as in
# production (tests/audit/test_axes.py logs in through the login page).
AUTHENTICATION_BACKENDS = [
    "audit.testing.RequestOptionalAxesBackend",
    # Password spraying from one address (many accounts, few tries each).
    "audit.throttle.AddressThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    "ent.backends.SchoolCASBackend",
]

# The ENT tests run a real CAS server on 127.0.0.1, over http (tests/ent/).
ENT_CAS_ALLOW_HTTP_LOCAL = True
