"""The Flask application factory: ``gunicorn "segs.web:create_app()"``, ``flask --app segs.web``."""

from __future__ import annotations

from flask import Flask

from segs.config import Settings
from segs.config import SettingsError
from segs.config import get_settings
from segs.web import cli
from segs.web import errors
from segs.web.health import bp as health_bp
from segs.web.telemetry import bp as telemetry_bp

BLUEPRINTS = (health_bp, telemetry_bp)


def create_app(settings: Settings | None = None) -> Flask:
    """Create the API application from *settings* (default: the environment)."""
    settings = settings or get_settings()
    if settings.is_production and not settings.jwt_secret_key:
        raise SettingsError("JWT_SECRET_KEY must be set when SEGS_ENV=production")
    app = Flask(__name__)
    app.config.from_mapping(
        SEGS_SETTINGS=settings,
        # Slightly above the ingestion limit so the view can answer 413 with the contract's body.
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 1,
        JSON_SORT_KEYS=False,
    )
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    errors.register_error_handlers(app)
    cli.register_commands(app)
    return app
