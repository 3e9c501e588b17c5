"""A Flask service with fender.

Run it with the production server:
    gunicorn -c python:fender.runtime.gunicorn_conf -k gthread --threads 4 examples.flask_app:app
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify

from fender.flask import Fender

app = Flask(__name__)


@app.get("/items/<int:item_id>")
def read_item(item_id: int) -> Any:
    return jsonify(item_id=item_id)


Fender(app)
