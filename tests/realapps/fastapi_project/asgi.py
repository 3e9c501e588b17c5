"""What the deployment serves: the team's logging config, then the app.

``gunicorn -c python:fender.runtime.gunicorn_conf realapps.fastapi_project.asgi:app``
"""

import logging.config

from realapps.fastapi_project.main import create_app

# The config such projects ship: their own format for their loggers, and uvicorn's access
# lines kept "because we want to see requests". fender must still print one line per event.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stdout",
        }
    },
    "loggers": {
        "realapps.fastapi_project": {"handlers": ["console"], "level": "INFO"},
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

logging.config.dictConfig(LOGGING)
app = create_app()
