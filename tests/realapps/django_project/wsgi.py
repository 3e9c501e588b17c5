"""WSGI entry point: ``gunicorn -c python:fender.runtime.gunicorn_conf -k gthread
'realapps.django_project.wsgi:get_application()'``."""

import os

from django.core.wsgi import get_wsgi_application

import fender

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "realapps.django_project.settings")


def get_application():
    application = get_wsgi_application()
    if os.environ.get("REALAPPS_WITHOUT_FENDER") != "1":
        application = fender.wsgi.wrap(application)
    return application
