"""Settings of the polls project (read from the environment where a deployment would)."""

import os

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-7q@x#corpus-only+not-for-production!2v^k)c8"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "realapps.django_project.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# Console handlers on the project's loggers, as Django's logging how-to shows them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django": {
            "handlers": ["console"],
            "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO"),
            "propagate": False,
        },
        "realapps.django_project": {"handlers": ["console"], "level": "INFO"},
    },
}
