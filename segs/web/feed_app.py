"""The feed process: ``gunicorn "segs.web.feed_app:create_feed_app()" --config
deploy/gunicorn_feed.conf.py``.

It serves only the live feed's event streams (and /health, /ready), on threads: an open
stream holds one thread here and nothing of the API, whose sync workers stay free for requests.
"""

from __future__ import annotations

from flask import Flask
from flask_limiter import Limiter

from segs.config import Settings
from segs.config import get_settings
from segs.db import configure_database
from segs.redis_client import configure_redis
from segs.redis_client import limits_storage_uri
from segs.web import errors
from segs.web import require_signing_key
from segs.web.feed import stream_bp
from segs.web.health import bp as health_bp
from segs.web.json_provider import SegsJSONProvider
from segs.web.limits import token_or_ip
from segs.web.security import configure_jwt


def create_feed_app(settings: Settings | None = None) -> Flask:
    """Create the feed process's application from *settings* (default: the environment)."""
    settings = settings or get_settings()
    require_signing_key(settings)
    configure_database(settings)
    configure_redis(settings)
    app = Flask(__name__)
    app.json = SegsJSONProvider(app)
    app.config.from_mapping(
        SEGS_SETTINGS=settings,
        RATELIMIT_STORAGE_URI=limits_storage_uri(settings.redis_url, settings.redis_cluster),
        RATELIMIT_KEY_PREFIX="segs:limits:feed",
        RATELIMIT_HEADERS_ENABLED=False,
        RATELIMIT_SWALLOW_ERRORS=False,
    )
    configure_jwt(app, settings)
    # A limiter of this app's own: connects per account (per address with a ticket); a stream
    # itself is one request. Not the API's limiter, whose default limit is another.
    limiter = Limiter(key_func=token_or_ip, default_limits=[settings.feed_connect_rate])
    limiter.init_app(app)
    limiter.exempt(health_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(stream_bp)
    errors.register_error_handlers(app)
    return app
