"""An app's own routes at fender's paths are kept, and fender says it gave its endpoint up."""

from __future__ import annotations

from flask import Flask

from fender.flask import Fender
from fender.testing import capture_logs


def test_a_flask_apps_own_status_and_health_are_kept():
    app = Flask(__name__)

    @app.get("/status")
    def status() -> dict[str, str]:
        return {"mine": "status"}

    with capture_logs() as logs:
        Fender(app, env="development")

        @app.get("/health")  # added after init_app, as a factory registering blueprints late
        def health() -> dict[str, str]:
            return {"mine": "health"}

        client = app.test_client()
        assert client.get("/status").get_json() == {"mine": "status"}
        assert client.get("/health").get_json() == {"mine": "health"}
        assert client.get("/health/live").status_code == 200  # the rest of fender's stay
    shadowed = {e["path"]: e for e in logs.events if e["event"] == "endpoint_shadowed"}
    assert set(shadowed) == {"/status", "/health"}
    assert "FENDER_HEALTH_PREFIX" in shadowed["/health"]["fix"]
