"""Settings shared by every environment, read from the environment with django-environ."""

from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials.apps.SimpleAppConfig",
    "classes",
    "generation",
    "worker",
    "exports",
    "privacy",
    "learning",
    # Security (issue 6): login throttling, Content-Security-Policy, audit log.
    "axes",
    "csp",
    "audit",
    # Sign-in through a school's ENT over CAS (issue 15): per-school CAS servers.
    "ent",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The request, for the audit receivers that record who changed a role.
    "audit.middleware.AuditContextMiddleware",
    # Pages with students' data are never stored by a browser or a proxy.
    "appreciation_site.middleware.NoStoreWhenSignedInMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # django-axes wants to be last: it turns a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "appreciation_site.urls"
WSGI_APPLICATION = "appreciation_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # django-template-partials wraps the loaders so `page.html#row` resolves.
            "builtins": ["template_partials.templatetags.partials"],
            "loaders": [
                (
                    "template_partials.loader.Loader",
                    [
                        (
                            "django.template.loaders.cached.Loader",
                            [
                                "django.template.loaders.filesystem.Loader",
                                "django.template.loaders.app_directories.Loader",
                            ],
                        )
                    ],
                )
            ],
        },
    }
]

# SQLite when no DATABASE_URL is set, so `make run` works on a bare machine.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"].setdefault("ATOMIC_REQUESTS", False)
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Reconnect after a PostgreSQL restart instead of serving errors from a dead connection.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "classes.Teacher"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "classes:dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Security: login throttling (django-axes) -------------------------------------------------
# A school's NAT puts every teacher behind one address: the lock is on the (username, IP) pair,
# so one teacher's mistakes never lock out their colleagues. 5 failures, then 15 minutes.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before anything
    # Password spraying from one address (many accounts, few tries each).
    "audit.throttle.AddressThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
    # ENT sign-in (CAS): takes a ticket, never a password; keyword-only arguments, so
    # authenticate(username=..., password=...) never reaches it (ent/backends.py).
    "ent.backends.SchoolCASBackend",
]
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = 5
# Password spraying (a few tries on many accounts) from one address: its own limit, higher
# than an account's because a school's teachers often share one public address.
LOGIN_FAILURES_PER_ADDRESS = env.int("LOGIN_FAILURES_PER_ADDRESS", default=20)
AXES_COOLOFF_TIME = timedelta(minutes=15)  # the messages below and lockout.html say 15 min
# Attempts while locked do not push the end of the lockout further away.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_COOLOFF_MESSAGE = (
    "Trop de tentatives de connexion échouées : ce compte est bloqué sur ce poste pendant "
    "15 minutes. Réessayez plus tard ou contactez l'administrateur de l'établissement."
)
AXES_PERMALOCK_MESSAGE = (
    "Trop de tentatives de connexion échouées : contactez l'administrateur de l'établissement."
)
# Same client address as the audit log (X-Forwarded-For from TRUSTED_PROXY_COUNT proxies).
AXES_CLIENT_IP_CALLABLE = "audit.ip.client_ip"
# Successful logins and logouts are in the audit log already.
AXES_DISABLE_ACCESS_LOG = True
# Reverse proxies in front of Django that append to X-Forwarded-For (0: use REMOTE_ADDR).
TRUSTED_PROXY_COUNT = env.int("DJANGO_TRUSTED_PROXY_COUNT", default=0)

# --- Sign-in through the school's ENT (CAS, django-cas-ng's backend and python-cas's client) ---
# Each school sets its own CAS server in the admin (School.cas_server_url): there is no global
# CAS_SERVER_URL. Never create an account from a CAS answer: teachers are created by the STS
# import or the school's admin, and matched within their school only (ent/services.py).
CAS_CREATE_USER = False
CAS_VERSION = "3"  # /p3/serviceValidate: the CAS 3 answer carries the attributes
CAS_VERIFY_SSL_CERTIFICATE = True
# Seconds to wait for the ENT's CAS server when validating a ticket.
ENT_CAS_TIMEOUT = env.float("ENT_CAS_TIMEOUT", default=10.0)
# A CAS server at http://127.0.0.1 or http://localhost (tests, development); https otherwise.
ENT_CAS_ALLOW_HTTP_LOCAL = env.bool("ENT_CAS_ALLOW_HTTP_LOCAL", default=False)

# --- Security: sessions (shared staff-room computers) ----------------------------------------
# The session ends when the browser closes, and at the latest SESSION_COOKIE_AGE after the
# last write to the session (the login), even in a browser left open.
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_COOKIE_AGE", default=8 * 60 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# htmx sends the token from the page (hx-headers on <body>), no script reads the cookie.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"

# --- Security: Content-Security-Policy (django-csp 4) ----------------------------------------
# No inline script, style or handler anywhere (htmx's indicator <style> is switched off in
# base.html). Django's admin has no inline script either (checked for Django 5.2), so the same
# policy applies to /admin/: tests/test_sessions_and_csp.py renders admin pages to keep it so.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# --- Security: audit log ----------------------------------------------------------------------
# audit.AuditEvent rows are kept at least six months (audit.services.AUDIT_RETENTION_MIN_DAYS);
# nothing deletes younger ones.

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français")]
# The French labels some dependencies lack (django-axes in the admin): locale/fr/LC_MESSAGES.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env("TIME_ZONE", default="Europe/Paris")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

# Imports: a class list is small; anything bigger is a wrong file.
IMPORT_MAX_BYTES = env.int("IMPORT_MAX_BYTES", default=2 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = IMPORT_MAX_BYTES + 64 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = IMPORT_MAX_BYTES + 64 * 1024

# Celery. REDIS_URL selects Redis; without it the filesystem transport that ships with kombu
# gives `make run` a real broker with no service to install.
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
else:
    _broker_dir = Path(env("CELERY_FILESYSTEM_BROKER_DIR", default=str(VAR_DIR / "broker")))
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu writes its exchanges here (else a `control/` folder in the working directory).
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
# Job status lives in our own tables; Celery results are not needed.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"generation.tasks.generate_*": {"queue": "gpu"}}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# A task running longer than the visibility timeout is delivered again: keep it above the limit.
CELERY_BROKER_TRANSPORT_OPTIONS.setdefault("visibility_timeout", CELERY_TASK_TIME_LIMIT + 15 * 60)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes logs every login at INFO; failures and lockouts stay (WARNING).
        "axes": {"level": "WARNING"},
        # WeasyPrint logs every layout step at INFO.
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # The inference-server backend's HTTP client logs every request at INFO (a class is
        # dozens); its retries and failures are logged by worker.backends.openai.
        "httpx2": {"level": "WARNING"},
    },
}

# Generation (see worker/ and the model card in ../shared/reference/model-card.txt).
# A dotted path to the backend class, like Django's EMAIL_BACKEND.
APPRECIATION_BACKEND = env(
    "APPRECIATION_BACKEND", default="worker.backends.transformers.TransformersBackend"
)
# Not gated, same weights as meta-llama's. Hub ids or local folders.
APPRECIATION_BASE_MODEL = env("APPRECIATION_BASE_MODEL", default="unsloth/Llama-3.2-3B-Instruct")
APPRECIATION_ADAPTER = env("APPRECIATION_ADAPTER", default="eltorio/Llama-3.2-3B-appreciation")
# True when the model in use is the random test model (`manage.py build_test_model`):
# pages that show a draft then say so.
APPRECIATION_TEST_MODEL = env.bool("APPRECIATION_TEST_MODEL", default=False)
APPRECIATION_DEVICE = env("APPRECIATION_DEVICE", default="auto")  # auto, cpu, cuda, cuda:1
APPRECIATION_DTYPE = env("APPRECIATION_DTYPE", default="auto")  # auto, bfloat16, float16
# The "Today Date" the Llama 3.x chat template writes into every prompt. The adapter was trained
# with Unsloth's llama-3.1 template, which writes "26 July 2024" when given no date;
# Meta's writes today's date. Inference and the training set both use this one value, so the
# model reads at inference exactly what it was (and will be) trained on.
APPRECIATION_CHAT_DATE = env("APPRECIATION_CHAT_DATE", default="26 July 2024")
# The model card's sampling settings; top_k/top_p pinned so no library default creeps in.
APPRECIATION_MAX_NEW_TOKENS = env.int("APPRECIATION_MAX_NEW_TOKENS", default=90)
APPRECIATION_TEMPERATURE = env.float("APPRECIATION_TEMPERATURE", default=1.5)
APPRECIATION_MIN_P = env.float("APPRECIATION_MIN_P", default=0.1)
APPRECIATION_TOP_K = env.int("APPRECIATION_TOP_K", default=0)
APPRECIATION_TOP_P = env.float("APPRECIATION_TOP_P", default=1.0)
APPRECIATION_SEED = env.int("APPRECIATION_SEED", default=None)
# 0 = automatic: the whole class in one batch, as far as free memory allows (the GPU's, or
# the CPU server's available RAM). Progress moves per draft and per decoding step anyway.
APPRECIATION_BATCH_SIZE = env.int("APPRECIATION_BATCH_SIZE", default=0)
APPRECIATION_MAX_ATTEMPTS = env.int("APPRECIATION_MAX_ATTEMPTS", default=3)
# The folder holding the `grammalecte` package (Debian's python3-grammalecte installs it
# there, for Debian's Python): only that package is imported from it (generation/grammar.py).
# Empty: only a grammalecte importable from the venv itself.
GRAMMALECTE_PATH = env("GRAMMALECTE_PATH", default="/usr/lib/python3/dist-packages")
# Compute the system prompt's keys and values once per batch instead of once per student
# (it is most of every prompt); off only to measure or to rule it out.
APPRECIATION_PREFIX_CACHE = env.bool("APPRECIATION_PREFIX_CACHE", default=True)
# An OpenAI-compatible inference server instead of a model in the worker
# (APPRECIATION_BACKEND=worker.backends.openai.OpenAICompatibleBackend; README, "Serveur
# d'inférence compatible OpenAI"). The prompt, date and card's sampling are the same.
# - the servers' base URLs, comma-separated (e.g. http://gpu1:8000/v1,http://gpu2:8000/v1):
#   a class's requests are spread over them, a failed one is sent to the next;
APPRECIATION_INFERENCE_SERVERS = env.list("APPRECIATION_INFERENCE_SERVERS", default=[])
# - the model name the server serves it under (vLLM's --served-model-name, llama.cpp's
#   --alias); the worker checks the server lists it. "{adapter_name}" in it stands for the
#   version in service's adapter folder name (v2...): one LoRA per version on the server;
APPRECIATION_INFERENCE_MODEL = env("APPRECIATION_INFERENCE_MODEL", default="appreciation")
# - the engine, whose sampler parameters differ: vllm, llama.cpp (llama-server) or
#   llama-cpp-python (its server); each gets the card's sampling pinned in its own terms;
APPRECIATION_INFERENCE_ENGINE = env("APPRECIATION_INFERENCE_ENGINE", default="vllm")
# - a bearer token, when the server asks for one (vLLM's --api-key, llama.cpp's --api-key);
APPRECIATION_INFERENCE_API_KEY = env("APPRECIATION_INFERENCE_API_KEY", default="")
# - seconds one request may take (90 new tokens on a busy server), connecting 5 s at most;
APPRECIATION_INFERENCE_TIMEOUT = env.float("APPRECIATION_INFERENCE_TIMEOUT", default=120.0)
# - tries per request (a server down, timing out, or answering 429/5xx: overloaded), waiting
#   BACKOFF, 2 x BACKOFF, 4 x BACKOFF... seconds (at most 30) between them, on the next server;
#   then the job fails with a French message and keeps its drafts (« Réessayer »);
APPRECIATION_INFERENCE_RETRIES = env.int("APPRECIATION_INFERENCE_RETRIES", default=6)
APPRECIATION_INFERENCE_BACKOFF = env.float("APPRECIATION_INFERENCE_BACKOFF", default=1.0)
# - requests in flight at once: a class goes out together and the server batches it.
APPRECIATION_INFERENCE_CONCURRENCY = env.int("APPRECIATION_INFERENCE_CONCURRENCY", default=64)
# CPU only: "int8" multiplies int8 weights (and int8 activations, quantized per call: torch's
# dynamic quantization) instead of bf16/float32 ones. Faster prefill and large batches on CPUs
# with VNNI; the texts are not the same as in bf16: another rounding of every weight changes
# the sampled tokens (bench/README.md, "int8 weights", measures by how much). "" = off.
APPRECIATION_QUANTIZE = env("APPRECIATION_QUANTIZE", default="")
# Faults heal by themselves (README, "Faults heal by themselves"):
# - a worker's claim on a batch of drafts (a lease) lasts APPRECIATION_LEASE_SECONDS and is
#   renewed every quarter of it while the worker lives, however long the batch takes; a dead
#   worker's claims expire and any live worker takes them over;
# - every APPRECIATION_RECOVERY_INTERVAL seconds Celery beat runs
#   generation.tasks.recover_stalled_jobs: an active job with expired claims, or with no sign
#   of life for APPRECIATION_STALL_SECONDS (its task lost with a worker or a Redis restart), is
#   sent again, a bounded number of times;
# - a worker that loses its database connection reconnects and retries the step with backoff
#   for up to APPRECIATION_DB_RETRY_SECONDS before giving the job back to the recovery.
APPRECIATION_LEASE_SECONDS = env.int("APPRECIATION_LEASE_SECONDS", default=2 * 60)
APPRECIATION_STALL_SECONDS = env.int("APPRECIATION_STALL_SECONDS", default=3 * 60)
APPRECIATION_RECOVERY_INTERVAL = env.float("APPRECIATION_RECOVERY_INTERVAL", default=30.0)
APPRECIATION_DB_RETRY_SECONDS = env.float("APPRECIATION_DB_RETRY_SECONDS", default=2 * 60)
CELERY_BEAT_SCHEDULE = {
    "recover-stalled-jobs": {
        "task": "generation.tasks.recover_stalled_jobs",
        "schedule": APPRECIATION_RECOVERY_INTERVAL,
        # A tick that waited longer than the interval is superseded by the next one.
        "options": {"expires": APPRECIATION_RECOVERY_INTERVAL},
    },
}

# --- The evaluation of a model version ---
# A candidate and the active version draft the held-out test rows with the same seed, and the
# teachers' texts are scored under each (learning/evaluation.py). Fixed batches: on a GPU the
# automatic size follows the free memory, and another batching would draw other numbers.
APPRECIATION_EVALUATION_BATCH_SIZE = env.int("APPRECIATION_EVALUATION_BATCH_SIZE", default=8)
APPRECIATION_EVALUATION_SEED = env.int("APPRECIATION_EVALUATION_SEED", default=1234)
# Pairs of drafts written for the teachers' panel per evaluation (identical pairs left out).
APPRECIATION_EVALUATION_PANEL_ITEMS = env.int("APPRECIATION_EVALUATION_PANEL_ITEMS", default=200)
# The promotion gate: a candidate "can be put in service" when every criterion passes.
# - at least this many test rows (fewer say too little to compare two versions);
APPRECIATION_GATE_MIN_ROWS = env.int("APPRECIATION_GATE_MIN_ROWS", default=30)
# - its loss on the teachers' texts (nats per token) at most this much above the active one's
#   (0.02: the same within noise; fine-tuning on the teachers' texts should lower it);
APPRECIATION_GATE_MAX_LOSS_INCREASE = env.float("APPRECIATION_GATE_MAX_LOSS_INCREASE", default=0.02)
# - at least this share of its drafts passing every check (length, no grade, French,
#   impersonal, no wording to avoid, no name), and at most this drop below the active one's;
APPRECIATION_GATE_MIN_CHECK_PASS_SHARE = env.float(
    "APPRECIATION_GATE_MIN_CHECK_PASS_SHARE", default=0.9
)
APPRECIATION_GATE_MAX_CHECK_PASS_DROP = env.float(
    "APPRECIATION_GATE_MAX_CHECK_PASS_DROP", default=0.02
)
# - chrF to the teachers' texts at least this many points above the active one's (0: not
#   further from what teachers write), and the normalised edit distance at most this much above;
APPRECIATION_GATE_MIN_CHRF_GAIN = env.float("APPRECIATION_GATE_MIN_CHRF_GAIN", default=0.0)
APPRECIATION_GATE_MAX_EDIT_DISTANCE_INCREASE = env.float(
    "APPRECIATION_GATE_MAX_EDIT_DISTANCE_INCREASE", default=0.0
)
# - its mean draft length within this many words of the teachers' mean.
APPRECIATION_GATE_MAX_WORD_COUNT_GAP = env.float(
    "APPRECIATION_GATE_MAX_WORD_COUNT_GAP", default=5.0
)
CELERY_TASK_ROUTES["learning.tasks.evaluate_version"] = {"queue": "gpu"}
# --- Model versions: the blind candidate share ---
# The share (0 to 1) of each class's drafts written by the newest candidate version instead of
# the active one, blind to the teacher: acceptance is then compared per version on real work.
# 0 (the default): every draft comes from the active version. While it is above 0, no page
# shows which version wrote a draft (a label on some rows would unblind the others).
APPRECIATION_CANDIDATE_SHARE = min(
    1.0, max(0.0, env.float("APPRECIATION_CANDIDATE_SHARE", default=0.0))
)
# --- Training runs (learning/training_data.py, learning/services/training.py, worker/training.py)
# Candidate adapters are written under APPRECIATION_MODELS_DIR/<version name>/ (where the
# workers read models); checkpoints and the run's data under APPRECIATION_TRAINING_DIR/run-<id>/.
APPRECIATION_MODELS_DIR = Path(env("APPRECIATION_MODELS_DIR", default=str(VAR_DIR / "models")))
APPRECIATION_TRAINING_DIR = Path(
    env("APPRECIATION_TRAINING_DIR", default=str(VAR_DIR / "training"))
)
# Where a new run starts: "active" (the active version's adapter) or "base" (a fresh LoRA).
APPRECIATION_TRAINING_START_FROM = env("APPRECIATION_TRAINING_START_FROM", default="active")
# A run refuses to start below this many training rows (train split, before the original set).
APPRECIATION_TRAINING_MIN_ROWS = env.int("APPRECIATION_TRAINING_MIN_ROWS", default=100)
# Shares of the rows held out (by student and teacher); the rest is trained on.
APPRECIATION_TRAINING_VALIDATION_SHARE = env.float(
    "APPRECIATION_TRAINING_VALIDATION_SHARE", default=0.1
)
APPRECIATION_TRAINING_TEST_SHARE = env.float("APPRECIATION_TRAINING_TEST_SHARE", default=0.1)
# Changing the salt reshuffles which students and teachers are held out.
APPRECIATION_TRAINING_SPLIT_SALT = env(
    "APPRECIATION_TRAINING_SPLIT_SALT", default="appreciation-training-split-v1"
)
# Training shares the GPU worker with drafting: when generation jobs wait, a run that has held
# the worker this long saves a checkpoint, sends itself again behind them and returns.
APPRECIATION_TRAINING_MAX_PAUSE_SECONDS = env.int(
    "APPRECIATION_TRAINING_MAX_PAUSE_SECONDS", default=120
)
# Whatever waits, a run hands the worker back this often (under Celery's time limit and the
# broker's visibility timeout): checkpoint, send again, resume.
APPRECIATION_TRAINING_SEGMENT_SECONDS = env.int(
    "APPRECIATION_TRAINING_SEGMENT_SECONDS", default=max(CELERY_TASK_TIME_LIMIT - 5 * 60, 60)
)
# A run that brought its worker down this many times (out of memory...) fails instead of looping.
APPRECIATION_TRAINING_MAX_RESTARTS = env.int("APPRECIATION_TRAINING_MAX_RESTARTS", default=3)
# Hyperparameters of a run, each overridable per run (page, `manage.py train_adapter`).
# The LoRA's shape is the original adapter's (r 16, alpha 16, dropout 0, seven projections).
APPRECIATION_TRAINING_DEFAULTS = {
    "epochs": 4,
    "max_steps": 0,  # 0: from the epochs
    "learning_rate": 2e-4,
    "batch_size": 8,
    "gradient_accumulation_steps": 1,
    "max_length": 512,
    "save_steps": 50,
    "eval_steps": 50,
    "logging_steps": 10,
    "dpo_beta": 0.1,
    "seed": 3407,
}
CELERY_TASK_ROUTES = {**CELERY_TASK_ROUTES, "learning.tasks.train_*": {"queue": "gpu"}}
