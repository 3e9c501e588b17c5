"""A Flask service in the style of Flask's tutorial: an app factory, blueprints under
``url_prefix``, SQLite through ``g``, sessions, and fender as an extension in the factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from fender.flask import Fender

fender_ext = Fender()


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        SECRET_KEY="dev",
        DATABASE=str(Path(app.instance_path) / "flask_project.sqlite"),
    )
    # Deployments set FLASK_SECRET_KEY, FLASK_DATABASE...
    app.config.from_prefixed_env()
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    app.logger.setLevel(logging.INFO)

    from realapps.flask_project import api, auth, blog, db

    db.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(blog.bp)
    app.register_blueprint(api.bp)

    @app.get("/status")
    def status() -> dict[str, str]:
        # The app's own status route: fender must leave it be.
        return {"status": "ok", "app": "flask-project"}

    if os.environ.get("REALAPPS_WITHOUT_FENDER") != "1":
        fender_ext.init_app(app)
    return app
