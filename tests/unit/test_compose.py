"""docker-compose.yml, Dockerfile and .env.example hold together, without Docker.

The file is read as YAML (merge keys resolved, `${...}` left as written) and
checked for what a deployment relies on. Where Debian's `docker-compose` is
installed, its own validation runs too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from base.settings import PROJECT_ROOT, load_sources

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"

AIRFLOW_COMPONENTS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
# The Celery profile's Airflow service: it scales (`--scale airflow-worker=N`).
WORKER = "airflow-worker"
# Services that run the hub's tasks (LocalExecutor: inside the scheduler; CeleryExecutor:
# in the workers).
TASK_RUNNERS = {"airflow-scheduler", WORKER}
PROFILES = {"hotline-sandbox": ["sandbox"], "redis": ["celery"], WORKER: ["celery"]}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|_URL$|SQL_ALCHEMY_CONN")
REQUIRED_VAR = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]+\}$")
ANY_VAR = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?[^}]*\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def compose_variables() -> list[re.Match[str]]:
    """The `${VAR...}` compose interpolates: not in comments, not `$${escaped}`."""
    lines = COMPOSE_FILE.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return list(ANY_VAR.finditer(text.replace("$$", "")))


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def command_of(service: dict[str, Any]) -> str:
    parts = [service.get("entrypoint") or [], service.get("command") or []]
    return " ".join(" ".join(p) if isinstance(p, list) else str(p) for p in parts)


def test_the_stack_has_its_parts(services: dict[str, dict[str, Any]]) -> None:
    assert {"warehouse", "airflow-metadata", "airflow-init", *AIRFLOW_COMPONENTS} <= set(services)
    for name, subcommand in AIRFLOW_COMPONENTS.items():
        assert command_of(services[name]).split()[:2] == ["airflow", subcommand], name
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )
    init = command_of(services["airflow-init"])
    assert "airflow db migrate" in init and "airflow users create" in init
    assert services["warehouse"]["image"] == "postgres:17"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in services["warehouse"]["volumes"])


def test_every_service_has_an_image_and_ours_is_built(services: dict[str, dict[str, Any]]) -> None:
    built = {s["image"] for s in services.values() if "build" in s}
    assert len(built) == 1, "one image of the hub, built from the Dockerfile"
    for name, service in services.items():
        assert service.get("image"), name
        if not service["image"].startswith(("postgres:", "redis:")):
            assert service["image"] in built, f"{name} runs an image nothing builds"
    for name in ("airflow-init", *AIRFLOW_COMPONENTS, WORKER):
        assert services[name]["build"]["dockerfile"] == "Dockerfile"
    assert DOCKERFILE.is_file()


def test_task_runners_get_the_warehouse_and_the_hub_secrets(services: dict[str, dict[str, Any]]) -> None:
    for name in TASK_RUNNERS:
        env = env_of(services[name])
        for var in ("HUB_WAREHOUSE_URL", "HUB_PII_KEY", "HUB_HOTLINE12345_APP_KEY",
                    "HUB_HOTLINE12345_APP_SECRET"):
            m = REQUIRED_VAR.match(env.get(var, ""))
            assert m and m["name"] == var, f"{name}: {var} must come from .env, required"
        assert "warehouse" in services[name]["depends_on"]


def test_secrets_go_only_where_tasks_run(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if name in TASK_RUNNERS or name == "hotline-sandbox":
            continue
        assert not {"HUB_WAREHOUSE_URL", "HUB_PII_KEY"} & set(env_of(service)), name


def test_no_literal_secret_and_no_default_for_one(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for var, value in env_of(service).items():
            if not SECRET_NAME.search(var):
                continue
            if "://" in value:  # a URL: any password part must be a required variable
                if "@" not in value:
                    continue
                password = urlsplit(ANY_VAR.sub(r"var-\g<name>", value)).password
                assert password is not None and password.startswith("var-"), f"{name}: {var}"
                assert all(m["op"] == ":?" for m in ANY_VAR.finditer(value)), f"{name}: {var}"
            else:
                assert REQUIRED_VAR.match(value), f"{name}: {var}={value!r} is not ${{VAR:?...}}"
    for m in compose_variables():
        if SECRET_NAME.search(m["name"]) and not m["name"].endswith("_PORT"):
            assert m["op"] == ":?", f"${{{m['name']}}} must be required, with no default"


def test_env_example_names_every_variable_and_holds_no_secret() -> None:
    example: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    used = {m["name"] for m in compose_variables()}
    assert used <= set(example), f"missing from .env.example: {sorted(used - set(example))}"
    for key, value in example.items():
        if SECRET_NAME.search(key) and key != "AIRFLOW_ADMIN_USERNAME":
            assert value == "", f".env.example must not carry a value for {key}"
    assert ".env" in (PROJECT_ROOT / ".gitignore").read_text().split()


def test_dags_and_sources_reach_airflow(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    for name in ("airflow-init", *AIRFLOW_COMPONENTS, WORKER):
        env = env_of(services[name])
        dags_folder = env["AIRFLOW__CORE__DAGS_FOLDER"]
        mounts = [v.split(":")[1] for v in services[name].get("volumes", [])]
        assert f"COPY dags {dags_folder}" in dockerfile or dags_folder in mounts, name
        sources = env["HUB_SOURCES_FILE"]
        assert sources in mounts or f"COPY sources.yaml {sources}" in dockerfile, name
    # The image copies named paths only: no `COPY . ` that could take .env along.
    assert not re.search(r"^COPY\s+\.\s", dockerfile, re.M)
    assert ".env" in (PROJECT_ROOT / ".dockerignore").read_text().split()


def test_components_share_the_keys_they_must_agree_on(services: dict[str, dict[str, Any]]) -> None:
    shared = ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY",
              "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
              "AIRFLOW__CORE__EXECUTOR", "AIRFLOW__CELERY__BROKER_URL",
              "AIRFLOW__CELERY__RESULT_BACKEND")
    for var in shared:
        values = {env_of(services[name]).get(var)
                  for name in ("airflow-init", *AIRFLOW_COMPONENTS, WORKER)}
        assert len(values) == 1 and None not in values, var


def test_sandbox_profile_serves_the_configured_base_url(services: dict[str, dict[str, Any]]) -> None:
    sandbox = services["hotline-sandbox"]
    assert sandbox["profiles"] == ["sandbox"]
    assert sandbox["network_mode"] == "service:airflow-scheduler"
    command = command_of(sandbox)
    assert "python -m sandbox.hotline_server" in command
    # The simulators are not installed in the image: they sit on the service's path.
    devtools = env_of(sandbox)["PYTHONPATH"]
    assert f"COPY sandbox {devtools}/sandbox" in DOCKERFILE.read_text(encoding="utf-8")
    base_url = urlsplit(load_sources().source("hotline12345").settings["base_url"])
    assert base_url.hostname == "127.0.0.1"
    assert f"--host 127.0.0.1 --port {base_url.port}" in command
    # Only the sandbox profile starts it; the celery profile, the broker and the workers.
    assert {n: s["profiles"] for n, s in services.items() if "profiles" in s} == PROFILES


def test_celery_profile_scales_workers_on_a_password_protected_broker(
        services: dict[str, dict[str, Any]]) -> None:
    worker, redis = services[WORKER], services["redis"]
    assert command_of(worker).split()[:3] == ["airflow", "celery", "worker"]
    # `--scale airflow-worker=N`: no fixed name, no host port for replicas to fight over.
    assert "container_name" not in worker and "ports" not in worker
    assert not published_ports(redis), "the broker is for the containers only"
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert redis["image"].startswith("redis:") and "healthcheck" in redis
    # The broker wants the password the components send, both from .env.
    assert '--requirepass "$$REDIS_PASSWORD"' in command_of(redis)
    assert REQUIRED_VAR.match(env_of(redis)["REDIS_PASSWORD"])
    env = env_of(worker)
    broker = urlsplit(ANY_VAR.sub(r"var-\g<name>", env["AIRFLOW__CELERY__BROKER_URL"]))
    assert (broker.scheme, broker.hostname, broker.password) == ("redis", "redis",
                                                                 "var-REDIS_PASSWORD")
    backend = urlsplit(ANY_VAR.sub(r"var-\g<name>", env["AIRFLOW__CELERY__RESULT_BACKEND"]))
    assert backend.scheme.startswith("db+postgresql") and backend.hostname == "airflow-metadata"
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    # Each worker loads the pipeline once, not each task (as `make scaleout` measures).
    assert "hub.pipeline" in json.loads(env["AIRFLOW__CELERY__EXTRA_CELERY_CONFIG"])["imports"]
    # The workers are built with the Celery provider: the image installs the scaleout extra.
    assert re.search(r'^RUN pip install "\.\[scaleout\]"', DOCKERFILE.read_text(encoding="utf-8"),
                     re.M)


def published_ports(service: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(host address or None for every interface, the mapping as written) of each port a
    service publishes, short syntax ("[ip:][host:]container[/proto]") or long."""
    found: list[tuple[str | None, str]] = []
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            found.append((port.get("host_ip"), str(port)))
            continue
        text = ANY_VAR.sub("VAR", str(port)).split("/")[0]  # ${X:-1}: no colon to split on
        if text.startswith("["):  # [::1]:8080:80
            address, _, _rest = text[1:].partition("]")
            found.append((address, str(port)))
            continue
        parts = text.split(":")
        found.append((parts[0] if len(parts) == 3 else None, str(port)))
    return found


def test_published_ports_listen_on_this_host_only(services: dict[str, dict[str, Any]]) -> None:
    """The warehouse, the Airflow UI and any simulator: 127.0.0.1 only, never every
    interface (a mapping without an address, or 0.0.0.0, publishes on all of them)."""
    published = []
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: host networking publishes all"
        for address, mapping in published_ports(service):
            published.append(name)
            assert address == "127.0.0.1", (
                f"{name} publishes {mapping!r} on {address or 'every interface'};"
                " bind it to 127.0.0.1 (\"127.0.0.1:${{PORT:-n}}:n\")")
    assert "airflow-apiserver" in published, "the Airflow UI is published (on 127.0.0.1)"


def test_the_port_check_tells_bound_from_open() -> None:
    service = {"ports": ["127.0.0.1:${HUB_WAREHOUSE_PORT:-5432}:5432", "${AIRFLOW_PORT:-8080}:8080",
                         "8012", "0.0.0.0:9000:9000/tcp", "[::1]:7000:7000",
                         {"target": 80, "published": 8081, "host_ip": "127.0.0.1"},
                         {"target": 81, "published": 8082}]}
    assert [a for a, _ in published_ports(service)] == [
        "127.0.0.1", None, None, "0.0.0.0", "::1", "127.0.0.1", None]


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    env = tmp_path / "filled.env"
    names = sorted({m["name"] for m in compose_variables()})
    env.write_text("".join(
        f"{n}={5000 + i if n.endswith('_PORT') else f'x{i}'}\n" for i, n in enumerate(names)
    ))
    for profile in ([], ["--profile", "sandbox"], ["--profile", "celery"]):
        done = subprocess.run(
            ["docker-compose", "--env-file", str(env), "-f", str(COMPOSE_FILE), *profile,
             "config", "--quiet"],
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stderr
    # And an unfilled .env is refused, naming what is missing.
    done = subprocess.run(
        ["docker-compose", "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config", "--quiet"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode != 0 and "in .env" in done.stderr


def test_the_image_holds_every_package_the_product_is_built_from():
    """A package added to the project (base/ was once forgotten) must reach the image."""
    import tomllib

    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = [p.rstrip("*") for p in config["tool"]["setuptools"]["packages"]["find"]["include"]]
    dockerfile = DOCKERFILE.read_text(encoding="utf-8")
    assert packages
    for package in packages:
        assert re.search(rf"^COPY\s+{package}\s+\./{package}\s*$", dockerfile, re.M), package
