"""What the deployment serves: ``gunicorn -c python:fender.runtime.gunicorn_conf -k gthread
realapps.flask_project.wsgi:app`` (with FLASK_SECRET_KEY and FLASK_DATABASE set)."""

from realapps.flask_project import create_app

app = create_app()
