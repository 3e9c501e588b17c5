from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app

bp = Blueprint("api", __name__, url_prefix="/api/v1")

ITEMS = {1: {"name": "lamp", "price": 12.5}, 7: {"name": "desk", "price": 120.0}}


@bp.get("/items/<int:item_id>")
def item(item_id: int) -> Any:
    if item_id not in ITEMS:
        abort(404)
    current_app.logger.info("item %s viewed", item_id)
    return ITEMS[item_id]
