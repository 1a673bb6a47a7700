"""Flask extensions, created unbound here and bound to the app in segs.web.create_app."""

from __future__ import annotations

from flask_jwt_extended import JWTManager
from flask_limiter import Limiter
from flask_smorest import Api

from segs.web.limits import token_or_ip
from segs.web.schemas import ErrorSchema


class SegsApi(Api):
    """flask-smorest's Api, documenting SEGS's error format instead of its own."""

    ERROR_SCHEMA = ErrorSchema


api = SegsApi()
jwt = JWTManager()
limiter = Limiter(key_func=token_or_ip)
