# One image for every SEGS process: API, migrations, Celery worker, beat, Flower and the simulator.
# Each compose service picks its process with `command:`; the default CMD runs the API.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Package metadata first, then the source (setup.cfg reads README.md for long_description).
COPY setup.cfg pyproject.toml README.md ./
COPY segs/ segs/
COPY simulator/ simulator/
COPY migrations/ migrations/
COPY alembic.ini celeryconfig.py beat_schedule.py ./
# The API and feed commands load their settings from deploy/, relative to /app; the API's loads
# the metrics hooks of the root gunicorn.conf.py.
COPY gunicorn.conf.py ./
COPY deploy/gunicorn.conf.py deploy/gunicorn_feed.conf.py deploy/

RUN pip install --no-cache-dir .

# /app on the path as well, so alembic.ini, migrations/ and the top-level config modules resolve
# from the working directory exactly as in a checkout.
# Production unless told otherwise: the API and the feed then refuse to start without a strong
# JWT_SECRET_KEY, and there is no fallback key.
ENV PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    SEGS_ENV=production

# Run as an unprivileged user. It owns /app itself (not the code) because celery beat writes its
# schedule file to the working directory, and it gets a real home for tools that keep state there.
RUN groupadd --system segs \
    && useradd --system --gid segs --create-home --home-dir /home/segs --shell /usr/sbin/nologin segs \
    && chown segs:segs /app
USER segs

# 8000 API, 8001 live feed, 5555 Flower, 9808 worker Prometheus metrics.
EXPOSE 8000 8001 5555 9808

CMD ["gunicorn", "segs.web:create_app()", "--bind", "0.0.0.0:8000", "--workers", "2", \
     "--config", "deploy/gunicorn.conf.py"]
