# The API image. Redis runs beside it (see docker-compose.yml or README): set REDIS_URL.
FROM python:3.11-slim

# SERVER=uvicorn serves with uvicorn instead (api/serve.py holds both servers' flags).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    REDIS_URL=redis://redis:6379/0 WORKERS=2 SERVER=granian \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus
WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml ./
RUN mkdir engine api devstack loadtests \
    && touch engine/__init__.py api/__init__.py devstack/__init__.py loadtests/__init__.py \
    && pip install --no-cache-dir -e . \
    && rm -rf engine api devstack loadtests

COPY engine ./engine
COPY api ./api
COPY lua ./lua
COPY devstack ./devstack
COPY loadtests ./loadtests

RUN useradd --system --no-create-home app
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=2s CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=1)"
# /metrics sums the workers' files in PROMETHEUS_MULTIPROC_DIR: start it empty. api.serve raises
# the open-file limit to the container's hard one (docker run --ulimit nofile=65536:65536).
CMD ["sh", "-c", "rm -rf $PROMETHEUS_MULTIPROC_DIR && mkdir -p $PROMETHEUS_MULTIPROC_DIR && exec python -m api.serve --host 0.0.0.0 --port 8000 --workers ${WORKERS}"]
