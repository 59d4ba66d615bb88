"""Settings for the partner certification dashboard.

One module, configured from the environment (django-environ). ``APP_ENV=production`` turns on
the production mode: every secret must be given explicitly and the security middleware is set
so that ``manage.py check --deploy`` has nothing to report. The development mode runs on a fresh
laptop with no services: SQLite under ``var/`` and a file-system Celery broker.
"""

from __future__ import annotations

import base64
import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from certification.engine.netpolicy import parse_networks
from partners.crypto import parse_key_ring

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Where the development mode keeps its SQLite database and file-system broker; `make run`'s
# tests point it at a temporary directory to run a whole demo beside another one.
VAR_DIR = Path(env.path("VAR_DIR", default=BASE_DIR / "var"))

APP_ENV = env.str("APP_ENV", default="development")
if APP_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"APP_ENV must be 'development' or 'production', not {APP_ENV!r}")
PRODUCTION = APP_ENV == "production"


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(f"{name} must be set when APP_ENV=production")
    return value


# Development keys are fixed so that a fresh clone works; they protect nothing and production
# refuses to start without real ones.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production-0123456789"
_DEV_ENCRYPTION_KEYS = "dev:ZGV2LW9ubHktaW5zZWN1cmUtZW5jcnlwdGlvbi1rZXk="


def _ids_of_dev_encryption_key(spec: str) -> list[str]:
    """Key ids in a key ring (already checked by ``parse_key_ring``) whose key is the
    development key, whatever id it is filed under."""
    dev_key = base64.b64decode(_DEV_ENCRYPTION_KEYS.partition(":")[2])
    entries = (entry.strip().partition(":") for entry in spec.split(","))
    return [kid for kid, _, b64 in entries if b64 and base64.b64decode(b64) == dev_key]


if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY")
    if SECRET_KEY == _DEV_SECRET_KEY:
        raise ImproperlyConfigured(
            "SECRET_KEY is the published development key; set a secret one when APP_ENV=production"
        )
    SECRETS_ENCRYPTION_KEYS = _required("SECRETS_ENCRYPTION_KEYS")
    parse_key_ring(SECRETS_ENCRYPTION_KEYS)
    if _dev_ids := _ids_of_dev_encryption_key(SECRETS_ENCRYPTION_KEYS):
        raise ImproperlyConfigured(
            f"SECRETS_ENCRYPTION_KEYS holds the published development key (key id "
            f"{', '.join(map(repr, _dev_ids))}); generate a real one with "
            "`manage.py new_encryption_key` when APP_ENV=production"
        )
    DEBUG = env.bool("DEBUG", default=False)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when APP_ENV=production")
else:
    SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY)
    SECRETS_ENCRYPTION_KEYS = env.str("SECRETS_ENCRYPTION_KEYS", default=_DEV_ENCRYPTION_KEYS)
    DEBUG = env.bool("DEBUG", default=True)
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# Networks that sandbox URLs may point into although they are not public. The development
# default allows loopback so that the demo sandbox on 127.0.0.1 works.
SANDBOX_ALLOWED_NETWORKS = env.str(
    "SANDBOX_ALLOWED_NETWORKS", default="" if PRODUCTION else "127.0.0.0/8,::1/128"
)
try:
    _sandbox_networks = parse_networks(SANDBOX_ALLOWED_NETWORKS)
except ValueError as exc:
    raise ImproperlyConfigured(f"SANDBOX_ALLOWED_NETWORKS: {exc}") from None

_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def _whole_families_covered(
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> list[str]:
    """The address families (``"IPv4"``, ``"IPv6"``) that ``networks`` cover entirely, alone
    (``0.0.0.0/0``) or together (``0.0.0.0/1`` with ``128.0.0.0/1``). IPv4-mapped IPv6
    networks count as the IPv4 networks they spell, since a connection to one reaches the
    other."""
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for network in networks:
        if isinstance(network, ipaddress.IPv4Network):
            v4.append(network)
            continue
        v6.append(network)
        if network.subnet_of(_IPV4_MAPPED):
            mapped = int(network.network_address) & 0xFFFFFFFF
            v4.append(ipaddress.IPv4Network((mapped, network.prefixlen - 96)))
        elif _IPV4_MAPPED.subnet_of(network):
            v4.append(ipaddress.IPv4Network("0.0.0.0/0"))
    return [
        family
        for family, nets in (("IPv4", v4), ("IPv6", v6))
        if any(net.prefixlen == 0 for net in ipaddress.collapse_addresses(nets))
    ]


if PRODUCTION and (_covered := _whole_families_covered(_sandbox_networks)):
    raise ImproperlyConfigured(
        f"SANDBOX_ALLOWED_NETWORKS covers every {' and every '.join(_covered)} address "
        f"({SANDBOX_ALLOWED_NETWORKS!r}), which would let partner URLs reach loopback, "
        "private and cloud metadata addresses; list only the networks sandboxes live in"
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "partners",
    "certification",
    "evidence",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes requires: it turns a login refused for lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if PRODUCTION:
    # Static files are served by the application server itself, compressed and cache-busted;
    # `manage.py collectstatic` fills STATIC_ROOT at deploy time.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "partners.context_processors.roles",
            ],
        },
    },
]

if PRODUCTION:
    DATABASES = {"default": env.db("DATABASE_URL")}
else:
    DATABASES = {
        "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
    }
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that a Celery worker process started by a test sees the test data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "partners:list"
LOGOUT_REDIRECT_URL = "login"

# Failed logins (django-axes, see partners/login_throttling.py). After LOGIN_FAILURE_LIMIT
# failures for one username from one address, that username is refused from that address for
# LOGIN_COOLOFF_MINUTES, even with the right password; each attempt while locked starts the
# wait again, and a successful login resets the count. Locking the pair rather than the
# username alone keeps an attacker from locking a user out everywhere. Behind reverse proxies
# the connecting address is the proxy's: TRUSTED_PROXY_COUNT says how many proxies append to
# X-Forwarded-For, or every user would share one address.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first, so a locked-out login is never tried
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOLOFF_MINUTES = env.int("LOGIN_COOLOFF_MINUTES", default=15)
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
for _name, _value, _least in (
    ("LOGIN_FAILURE_LIMIT", LOGIN_FAILURE_LIMIT, 1),
    ("LOGIN_COOLOFF_MINUTES", LOGIN_COOLOFF_MINUTES, 1),
    ("TRUSTED_PROXY_COUNT", TRUSTED_PROXY_COUNT, 0),
):
    if _value < _least:
        raise ImproperlyConfigured(f"{_name} must be at least {_least}, not {_value}")
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_COOLOFF_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "partners.login_throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "partners.login_throttling.lockout_response"
AXES_VERBOSE = False  # no banner on every manage.py command and worker start

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Evidence bundles (zip files) are kept in this storage; with several web and worker machines,
# point EVIDENCE_ROOT at a shared volume (or configure another storage backend here).
EVIDENCE_ROOT = env.path("EVIDENCE_ROOT", default=BASE_DIR / "var" / "evidence")
STORAGES["evidence"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(EVIDENCE_ROOT), "base_url": None},
}
# The Ed25519 key that signs evidence bundles: a PKCS#8 PEM (newlines may be written as \n) or
# the base64 of the 32-byte private key. Required in production; in development a key is
# generated once into EVIDENCE_SIGNING_KEY_FILE.
EVIDENCE_SIGNING_KEY = env.str("EVIDENCE_SIGNING_KEY", default="")
if PRODUCTION and not EVIDENCE_SIGNING_KEY:
    raise ImproperlyConfigured(
        "EVIDENCE_SIGNING_KEY must be set when APP_ENV=production; generate one with "
        "`openssl genpkey -algorithm ed25519` (or `manage.py signing_key --generate` outside "
        "production)"
    )
EVIDENCE_SIGNING_KEY_FILE = env.path(
    "EVIDENCE_SIGNING_KEY_FILE", default=BASE_DIR / "var" / "evidence-signing-key.pem"
)

# Uploaded registry CSVs are read in memory; nothing larger is accepted.
REGISTRY_UPLOAD_MAX_BYTES = env.int("REGISTRY_UPLOAD_MAX_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Celery. The development default is kombu's file-system transport: a real broker that needs no
# server, shared by the web process and a separate worker process through files under var/.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default="" if PRODUCTION else "filesystem://localhost//"
) or _required("CELERY_BROKER_URL")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    # Tasks are acknowledged late. A task whose worker vanished is redelivered once it has been
    # unacknowledged for the visibility timeout, found by a sweep every restore interval; the
    # timeout must outlast the longest task or a running task is handed to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=60),
        "unacked_restore_throttle": 1,
    }
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=1800)
CELERY_TASK_SOFT_TIME_LIMIT = max(
    1, min(CELERY_TASK_TIME_LIMIT - 60, CELERY_TASK_TIME_LIMIT * 9 // 10)
)
_visibility = CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout")
if _visibility is not None and _visibility <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({_visibility}) must be longer than CELERY_TASK_TIME_LIMIT "
        f"({CELERY_TASK_TIME_LIMIT}), or running tasks would be delivered to a second worker"
    )
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True

# What a run records and accepts from a partner's sandbox.
RESULT_BODY_CAPTURE_BYTES = env.int("RESULT_BODY_CAPTURE_BYTES", default=64 * 1024)
# What a suite may hold: one file (checked before parsing), a whole suite with its $refs, and
# the requests of one latencyProbe.
SUITE_FILE_MAX_BYTES = env.int("SUITE_FILE_MAX_BYTES", default=1024 * 1024)
SUITE_MAX_BYTES = env.int("SUITE_MAX_BYTES", default=8 * 1024 * 1024)
PROBE_MAX_REQUESTS = env.int("PROBE_MAX_REQUESTS", default=100_000)
# A latency probe whose client process used this share of a core or more says its percentiles
# include the client's own queueing, and a target they miss is not counted as a measured miss.
PROBE_CLIENT_CPU_LIMIT_PERCENT = env.float("PROBE_CLIENT_CPU_LIMIT_PERCENT", default=80.0)
# The most processes one latency probe (``processes: N``) may be sent from. Unset: the cores
# the process may run on (certification.engine.model.usable_cores, the engine's default).
PROBE_MAX_PROCESSES = env.int("PROBE_MAX_PROCESSES", default=None)
if PROBE_MAX_PROCESSES is not None and PROBE_MAX_PROCESSES < 1:
    raise ImproperlyConfigured(f"PROBE_MAX_PROCESSES must be at least 1, not {PROBE_MAX_PROCESSES}")
RESPONSE_MAX_BYTES = env.int("RESPONSE_MAX_BYTES", default=10 * 1024 * 1024)
REQUEST_TIMEOUT_MS = env.int("REQUEST_TIMEOUT_MS", default=30_000)

# Hosted mocks and the webhook inbox: the base URL partners' sandboxes reach this product at,
# how long a step waits after its action for captured traffic, and the largest bodies taken.
if PRODUCTION:
    # Partners' sandboxes call this address with their traffic and signed webhooks: it must be
    # the real public one, and TLS.
    PUBLIC_BASE_URL = _required("PUBLIC_BASE_URL")
    if not PUBLIC_BASE_URL.startswith("https://"):
        raise ImproperlyConfigured(
            f"PUBLIC_BASE_URL must be an https:// URL when APP_ENV=production, not "
            f"{PUBLIC_BASE_URL!r}"
        )
else:
    PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
TRAFFIC_SETTLE_MS = env.int("TRAFFIC_SETTLE_MS", default=500)
MOCK_MAX_BYTES = env.int("MOCK_MAX_BYTES", default=1024 * 1024)
INBOX_MAX_BYTES = env.int("INBOX_MAX_BYTES", default=256 * 1024)

# A worker running a scenario renews its lease every SCENARIO_LEASE_SECONDS / 4; a scenario
# whose lease has run out belongs to a worker that died and is queued again by the sweep that
# every worker runs every STALLED_SWEEP_SECONDS (certification/sweeper.py). Together they bound
# how long a run waits on a dead worker: about lease + sweep, 10 s by default.
SCENARIO_LEASE_SECONDS = env.int("SCENARIO_LEASE_SECONDS", default=8)
SCENARIO_MAX_ATTEMPTS = env.int("SCENARIO_MAX_ATTEMPTS", default=3)
QUEUED_RESEND_SECONDS = env.int("QUEUED_RESEND_SECONDS", default=1800)
STALLED_SWEEP_SECONDS = env.int("STALLED_SWEEP_SECONDS", default=2)
CELERY_BEAT_SCHEDULE = {
    "start-due-recertifications": {
        "task": "certification.tasks.start_due_recertifications",
        "schedule": 60.0,
    },
    # Certifications whose validity or a waiver ended: expired within the hour.
    "expire-certifications": {
        "task": "evidence.tasks.expire_certifications",
        "schedule": 3600.0,
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # WeasyPrint logs every page of every certificate at INFO.
    "loggers": {
        "weasyprint": {"level": "WARNING"},
        "fontTools": {"level": "WARNING"},
        # asyncssh logs every SFTP connection's steps at INFO.
        "asyncssh": {"level": "WARNING"},
    },
}
