"""The Flask application factory: ``gunicorn "segs.web:create_app()"``, ``flask --app segs.web``."""

from __future__ import annotations

import secrets
from dataclasses import replace
from importlib.resources import files

import click
from flask import Blueprint
from flask import Flask

from segs.config import Settings
from segs.config import SettingsError
from segs.config import get_settings
from segs.domain.keys import signing_key_problem
from segs.ingestion_client import configure_ingestion
from segs.redis_client import limits_storage_uri
from segs.web import cli
from segs.web import errors
from segs.web.admin import bp as admin_bp
from segs.web.alerts import bp as alerts_bp
from segs.web.audit import bp as audit_bp
from segs.web.auth import bp as auth_bp
from segs.web.billing import bp as billing_bp
from segs.web.dead_letters import bp as dead_letters_bp
from segs.web.extensions import api
from segs.web.extensions import limiter
from segs.web.feed import bp as feed_bp
from segs.web.health import bp as health_bp
from segs.web.ingestion_keys import bp as ingestion_keys_bp
from segs.web.json_provider import SegsJSONProvider
from segs.web.meter_data import bp as meter_data_bp
from segs.web.meters import bp as meters_bp
from segs.web.notifications import bp as notifications_bp
from segs.web.quarantine import bp as quarantine_bp
from segs.web.regions import bp as regions_bp
from segs.web.security import BEARER_SCHEME
from segs.web.security import configure_jwt
from segs.web.tariffs import bp as tariffs_bp
from segs.web.telemetry import bp as telemetry_bp
from segs.web.telemetry.openapi import document_ingestion
from segs.web.users import bp as users_bp

# Swagger UI's own files, served by this app so /api-docs needs no network: swagger-ui-dist as
# the pinned flask-swagger-ui package ships it (setup.cfg). Only its dist/ folder is used; the
# page itself is flask-smorest's (OPENAPI_SWAGGER_UI_URL points it here).
SWAGGER_UI_ASSETS_PATH = "/api-docs/assets"
swagger_ui_assets_bp = Blueprint(
    "swagger_ui_assets",
    __name__,
    static_folder=str(files("flask_swagger_ui") / "dist"),
    static_url_path=SWAGGER_UI_ASSETS_PATH,
)

# Plain blueprints: probes, metrics, the meters' ingestion endpoints (limited per ingestion
# key by their own views) and Swagger UI's static files. The API's general rate limit does not
# apply to them. The live feed's streams are served by the feed process (segs.web.feed_app).
BLUEPRINTS = (health_bp, telemetry_bp, swagger_ui_assets_bp)

# flask-smorest blueprints under /api/v1, one per resource; they make the OpenAPI document.
API_BLUEPRINTS: tuple = (
    auth_bp,
    users_bp,
    meters_bp,
    ingestion_keys_bp,
    dead_letters_bp,
    quarantine_bp,
    audit_bp,
    admin_bp,
    meter_data_bp,
    regions_bp,
    alerts_bp,
    feed_bp,
    notifications_bp,
    tariffs_bp,
    billing_bp,
)


def create_app(settings: Settings | None = None) -> Flask:
    """Create the API application from *settings* (default: the environment's, for gunicorn
    and the flask command)."""
    settings = settings or get_settings()
    if settings.jwt_secret_key is None and _loaded_for_a_cli_command():
        # No other process has to trust what a CLI command signs (and most sign nothing:
        # migrate, create-ingestion-key...), so a random key of its own does.
        settings = replace(settings, jwt_secret_key=secrets.token_urlsafe(32))
    require_signing_key(settings)
    # The engine, the Redis client and ingestion are built from the app's settings.
    configure_ingestion(settings)
    app = Flask(__name__)
    app.json = SegsJSONProvider(app)
    app.config.from_mapping(
        SEGS_SETTINGS=settings,
        # Slightly above the ingestion limit so the view can answer 413 with the contract's body.
        MAX_CONTENT_LENGTH=settings.max_body_bytes + 1,
    )
    register_extensions(app, settings)
    register_blueprints(app, settings)
    checked = {blueprint.name for blueprint in API_BLUEPRINTS}
    app.before_request(lambda: errors.refuse_control_characters_in_path(checked))
    errors.register_error_handlers(app)
    cli.register_commands(app)
    return app


def _loaded_for_a_cli_command() -> bool:
    """Whether the flask command loads the app for one of its commands, other than ``run``
    (the development server, which serves requests and so needs a real key)."""
    context = click.get_current_context(silent=True)
    return context is not None and context.info_name != "run"


def require_signing_key(settings: Settings) -> None:
    """Refuse to start without a strong JWT_SECRET_KEY, except under SEGS_ENV=testing.

    A key anyone can read (a default in the source or in docker-compose) lets anyone sign an
    admin's token. ``make run`` makes a random key for each run.
    """
    if settings.is_testing and settings.jwt_secret_key is None:
        return
    problem = signing_key_problem(settings.jwt_secret_key)
    if problem is not None:
        raise SettingsError(
            f"{problem}; set it to at least 32 random bytes, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )


def register_extensions(app: Flask, settings: Settings) -> None:
    """Bind the OpenAPI layer, JWT authentication and the rate limiter to *app*."""
    app.config.update(
        API_TITLE="SEGS API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="api/v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="api-docs",
        OPENAPI_SWAGGER_UI_URL=f"{SWAGGER_UI_ASSETS_PATH}/",
        # No "validator" badge: it would send the document to validator.swagger.io.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": None},
        # Every operation needs a bearer token unless it says otherwise (security=[]); the
        # ingestion routes say ingestionKey (segs.web.telemetry.openapi).
        API_SPEC_OPTIONS={
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        **BEARER_SCHEME,
                        "description": "An access token from POST /api/v1/auth/login.",
                    }
                }
            },
        },
        RATELIMIT_STORAGE_URI=limits_storage_uri(settings.redis_url, settings.redis_cluster),
        RATELIMIT_KEY_PREFIX="segs:limits",
        RATELIMIT_DEFAULT=settings.rate_limit_default,
        # Off: Flask-Limiter would set Retry-After on every answer to its own window's reset,
        # overriding the login delay's; segs.web.errors sets it on the 429s instead.
        RATELIMIT_HEADERS_ENABLED=False,
        # With Redis down the limits cannot be counted: refuse (503) rather than not limit.
        RATELIMIT_SWALLOW_ERRORS=False,
    )
    api.init_app(app)
    configure_jwt(app, settings)
    limiter.init_app(app)


def register_blueprints(app: Flask, settings: Settings) -> None:
    """Register the probes and ingestion as plain blueprints, the REST resources on the API."""
    for blueprint in BLUEPRINTS:
        limiter.exempt(blueprint)
        app.register_blueprint(blueprint)
    # Plain views are not in flask-smorest's document: ingestion's are written in by hand, first,
    # as the first thing a meter's integrator looks for.
    document_ingestion(app, api.spec, settings)
    for api_blueprint in API_BLUEPRINTS:
        api.register_blueprint(api_blueprint, url_prefix=f"/api/v1{api_blueprint.url_prefix}")
