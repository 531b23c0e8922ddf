# The hub and Airflow 3 in one image. Every Airflow component of docker-compose.yml
# runs from it, and so do the sandbox simulators (`--profile sandbox`).
#
#   docker compose build
#
# No secret is baked in: they all come from the environment at run time.
FROM python:3.11-slim

# Airflow's own extras that a server deployment needs and `make demo` does not:
# PostgreSQL drivers for the metadata database (psycopg2, asyncpg) and the FAB
# auth manager (real users and roles; Airflow 3's default is a dev-only one).
ARG AIRFLOW_VERSION=3.3.2

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/hub/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    HUB_HOME=/opt/hub/state \
    HUB_SOURCES_FILE=/opt/hub/sources.yaml

# uid 50000 / gid 0, as in Apache's own Airflow image, so volumes behave the same.
RUN useradd --create-home --uid 50000 --gid 0 --shell /bin/bash hub

WORKDIR /opt/hub/src
# Only what the package is built from: never .env, .hub/ or a venv.
COPY pyproject.toml README.md ./
COPY base ./base
COPY hub ./hub
COPY warehouse ./warehouse
COPY schemas ./schemas
COPY connectors ./connectors
COPY conform ./conform
COPY quality ./quality
COPY link ./link
# The scaleout extra: the Celery provider and the Redis client, for `--profile celery`.
RUN pip install ".[scaleout]" \
        "apache-airflow[postgres]==${AIRFLOW_VERSION}" \
        apache-airflow-providers-fab \
    && python -c "import hub.dag_factory, connectors.registry"

# The DAGs and the default sources file; compose mounts the deployment's own
# sources.yaml over the latter.
COPY dags /opt/hub/dags
COPY sources.yaml /opt/hub/sources.yaml
# The simulators are development tools, not part of the installed hub: they sit
# beside it for `--profile sandbox`, which puts them on PYTHONPATH.
COPY sandbox /opt/hub/devtools/sandbox

RUN mkdir -p /opt/airflow/logs /opt/hub/state \
    && chown -R hub:0 /opt/airflow /opt/hub/state \
    && chmod -R g+rwX /opt/airflow /opt/hub/state

USER hub
WORKDIR /opt/hub
EXPOSE 8080
CMD ["airflow", "version"]
