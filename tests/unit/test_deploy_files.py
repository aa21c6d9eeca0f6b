"""The deployment files agree with the code they deploy.

Checked against the code, not against copies of it: environment variable names come from the
pydantic-settings classes (env prefix + field name, or the field's aliases), ports from their
defaults, commands from the CLI's argparse parser. `docker compose config` and
`systemd-analyze verify` run where those tools exist (they are linters, not services).
"""
from __future__ import annotations

import argparse
import importlib
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from consumer.settings import ConsumerSettings
from pgtrail.cli import build_parser
from publisher.settings import KafkaSettings
from sink.settings import SinkSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
SYSTEMD = DEPLOY / "systemd"
ENV_EXAMPLE = SYSTEMD / "pgtrail.env.example"
UNITS = sorted(SYSTEMD.glob("*.service"))

PGTRAIL_SERVICES = {"pgtrail-install": "install", "pgtrail-consumer": "consume", "pgtrail-sink": "sink"}
EXPECTED_SERVICES = {"postgres", "kafka", "prometheus", "grafana", *PGTRAIL_SERVICES}
# the settings field holding each long-running service's metrics port
METRICS_PORT_FIELD = {"pgtrail-consumer": (ConsumerSettings, "consumer_metrics_port"),
                      "pgtrail-sink": (SinkSettings, "metrics_port")}
# variables each command cannot run without a deliberate value for
REQUIRED_ENV = {"install": {"PGTRAIL_SOURCE_DSN", "PGTRAIL_VAULT_DSN"},
                "consume": {"PGTRAIL_SOURCE_DSN", "PGTRAIL_KAFKA_BOOTSTRAP"},
                "sink": {"PGTRAIL_VAULT_DSN", "PGTRAIL_KAFKA_BOOTSTRAP"}}
ASSIGNMENT = re.compile(r"^\s*#?\s*(PGTRAIL_[A-Z0-9_]+)=(.*)$")
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}")


# ------------------------------------------------------------------ what the code accepts
def settings_classes() -> list[type[BaseSettings]]:
    """Every pydantic-settings class of a component's settings module (consumer/settings.py, ...)."""
    found = []
    for path in sorted(ROOT.glob("*/settings.py")):
        module = importlib.import_module(f"{path.parent.name}.settings")
        found += [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, BaseSettings)
                  and c is not BaseSettings and c.__module__ == module.__name__]
    return found


def env_names(cls: type[BaseSettings]) -> set[str]:
    """The variable names pydantic-settings reads for cls: its aliases where a field has them."""
    prefix = cls.model_config.get("env_prefix", "")
    names = set()
    for name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{name}")
    return {n.upper() for n in names}


def raw_env_names() -> set[str]:
    """PGTRAIL_ variables the code reads straight from os.environ rather than through settings."""
    pattern = re.compile(r"""(?:environ(?:\.get)?\s*[\[(]|getenv\s*\()\s*["'](PGTRAIL_[A-Z0-9_]+)["']""")
    names = set()
    for package in ("pgtrail", "consumer", "publisher", "sink"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(pattern.findall(path.read_text(encoding="utf-8")))
    return names


VALID_ENV = set().union(*(env_names(c) for c in settings_classes())) | raw_env_names()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def parses(argv: list[str]) -> bool:
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def load_settings(monkeypatch, env: dict[str, str]) -> dict[type, BaseSettings]:
    """Every settings class built from exactly env: a wrong type or pattern fails validation."""
    for name in list(__import__("os").environ):
        if name.upper().startswith("PGTRAIL_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {c: c() for c in settings_classes()}


def default(cls: type[BaseSettings], field: str):
    return cls.model_fields[field].default


# ------------------------------------------------------------------ compose helpers
@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def interpolated(value: str) -> str:
    """Compose's ${VAR} / ${VAR:?msg} replaced by a placeholder without spaces or quotes."""
    return INTERPOLATION.sub(lambda m: f"x-{m.group(1).lower()}", value)


def container_ports(service: dict) -> set[int]:
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def mounts(service: dict) -> list[tuple[str, str]]:
    """(source, container path) of each volume entry, short or long syntax."""
    result = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            result.append((entry["source"], entry["target"]))
        else:
            source, target = entry.split(":")[:2]
            result.append((source, target))
    return result


def bind_source(source: str) -> Path | None:
    return (DEPLOY / source).resolve() if source.startswith((".", "/")) else None


def host_file_for(service: dict, container_path: str) -> Path | None:
    """The host path a bind mount puts at container_path (directly or inside a mounted folder)."""
    wanted = PurePosixPath(container_path)
    for source, target in mounts(service):
        host = bind_source(source)
        if host is None:
            continue
        target = PurePosixPath(target)
        if wanted == target:
            return host
        if target in wanted.parents:
            return host / wanted.relative_to(target)
    return None


def dsn_fields(dsn: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(dsn))


def pgtrail_services(compose: dict):
    for name, command in PGTRAIL_SERVICES.items():
        yield name, command, compose["services"][name]


# ------------------------------------------------------------------ compose
def test_docker_compose_config_accepts_the_file(tmp_path):
    if shutil.which("docker") is None or subprocess.run(["docker", "compose", "version"],
                                                        capture_output=True).returncode != 0:
        pytest.skip("no `docker compose` here: the YAML checks below stand in for it")
    env = {"PATH": __import__("os").environ["PATH"], "HOME": str(tmp_path), "POSTGRES_PASSWORD": "p",
           "CDC_PASSWORD": "c", "GRAFANA_ADMIN_PASSWORD": "g"}
    run = subprocess.run(["docker", "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
                         capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr


def test_compose_has_every_service_and_pgtrail_runs_real_commands(compose):
    services = compose["services"]
    assert EXPECTED_SERVICES <= set(services)
    for name, command, service in pgtrail_services(compose):
        assert service["command"][0] == command, name
        assert parses(service["command"]), f"{name}: `pgtrail {' '.join(service['command'])}` is not a valid command"
        build = service["build"]
        assert (DEPLOY / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == ROOT / "Dockerfile"
    assert services["pgtrail-install"]["restart"] == "no"


def test_pgtrail_services_use_only_real_settings_with_valid_values(compose, monkeypatch):
    for name, command, service in pgtrail_services(compose):
        env = environment(service)
        unknown = set(env) - VALID_ENV
        assert not unknown, f"{name}: {sorted(unknown)} are not settings pgtrail reads (known: {sorted(VALID_ENV)})"
        missing = REQUIRED_ENV[command] - set(env)
        assert not missing, f"{name}: `pgtrail {command}` needs {sorted(missing)}"
        load_settings(monkeypatch, {k: interpolated(v) for k, v in env.items()})


def test_metrics_ports_are_the_settings_defaults_and_reachable(compose, monkeypatch):
    dockerfile_env = dict(re.findall(r"\b(PGTRAIL_[A-Z0-9_]+)=(\S+)", (ROOT / "Dockerfile").read_text()))
    for name, (cls, field) in METRICS_PORT_FIELD.items():
        service = compose["services"][name]
        env = environment(service)
        port = getattr(load_settings(monkeypatch, {k: interpolated(v) for k, v in env.items()})[cls], field)
        assert port == default(cls, field), f"{name} listens on {port}, the documented default is {default(cls, field)}"
        assert port in container_ports(service), f"{name}: metrics port {port} not published"
        assert f":{port}/metrics" in " ".join(service["healthcheck"]["test"]), f"{name}: healthcheck misses {port}"
        addr = env.get("PGTRAIL_METRICS_ADDR", dockerfile_env.get("PGTRAIL_METRICS_ADDR", "127.0.0.1"))
        assert addr == "0.0.0.0", f"{name}: metrics on {addr} cannot be scraped from another container"


def test_dsns_point_at_the_compose_database(compose):
    postgres = compose["services"]["postgres"]
    pg_env = environment(postgres)
    init_sql = "\n".join(p.read_text() for p in sorted((DEPLOY / "postgres" / "initdb").iterdir()))
    databases = {pg_env.get("POSTGRES_DB", "postgres"), *re.findall(r"create database (\w+)", init_sql, re.I)}
    roles = {pg_env.get("POSTGRES_USER", "postgres"), *re.findall(r"create role (\w+) login", init_sql, re.I)}
    for name, _, service in pgtrail_services(compose):
        for var, dsn in environment(service).items():
            if not var.endswith("_DSN"):
                continue
            fields = dsn_fields(dsn)
            assert fields["host"] == "postgres" and fields.get("port", "5432") == "5432", f"{name} {var}"
            assert fields["dbname"] in databases, f"{name} {var}: database {fields['dbname']} is never created"
            assert fields["user"] in roles, f"{name} {var}: role {fields['user']} is never created"
            password_vars = set(INTERPOLATION.findall(fields.get("password", "")))
            assert password_vars and password_vars <= set(INTERPOLATION.findall(" ".join(pg_env.values()))), \
                f"{name} {var}: the password must come from a variable the postgres service also gets"


def test_postgres_image_has_wal2json_and_logical_wal():
    dockerfile = (DEPLOY / "postgres" / "Dockerfile").read_text()
    assert "postgresql-15-wal2json" in dockerfile
    conf_target = re.search(r"^COPY\s+pgtrail\.conf\s+(\S+)$", dockerfile, re.M).group(1)
    init = (DEPLOY / "postgres" / "initdb" / "10-pgtrail.sh").read_text()
    assert f"include_dir = '{PurePosixPath(conf_target).parent}'" in init
    conf = dict(re.findall(r"^(\w[\w.]*)\s*=\s*'?([^'#\n]*?)'?\s*(?:#.*)?$",
                           (DEPLOY / "postgres" / "pgtrail.conf").read_text(), re.M))
    assert conf["wal_level"] == "logical"
    assert int(conf["max_replication_slots"]) >= 1 and int(conf["max_wal_senders"]) >= 1


def test_kafka_listener_is_the_bootstrap_address_and_takes_the_largest_record(compose, monkeypatch):
    kafka = environment(compose["services"]["kafka"])
    advertised = {addr.split("://", 1)[1] for addr in kafka["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name, _, service in pgtrail_services(compose):
        bootstrap = environment(service).get("PGTRAIL_KAFKA_BOOTSTRAP")
        if bootstrap is None:
            continue
        for address in bootstrap.split(","):
            assert address in advertised, f"{name}: {address} is not an advertised listener ({advertised})"
            assert address.split(":")[0] in compose["services"], f"{name}: {address} names no compose service"
    assert int(kafka["KAFKA_MESSAGE_MAX_BYTES"]) >= default(KafkaSettings, "max_request_size")
    pom = (DEPLOY / "kafka" / "pom.xml").read_text()
    version = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom).group(1)
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}", "one Kafka release for both set-ups"


def test_volumes_are_declared_and_bind_mounts_exist(compose):
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for source, _ in mounts(service):
            host = bind_source(source)
            if host is None:
                assert source in declared, f"{name}: volume {source} is not declared"
                used.add(source)
            else:
                assert host.exists(), f"{name}: {source} does not exist"
    assert declared == used, f"declared but unused: {sorted(declared - used)}"
    for name in ("postgres", "kafka", "prometheus", "grafana"):
        assert any(bind_source(s) is None for s, _ in mounts(compose["services"][name])), f"{name} keeps no data"


def test_start_order_waits_for_health_and_install(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits for {dependency}, which has no healthcheck"
    for name in ("pgtrail-consumer", "pgtrail-sink"):
        depends = services[name]["depends_on"]
        assert depends["pgtrail-install"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
    assert services["pgtrail-install"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_prometheus_scrapes_the_compose_services_with_the_alert_rules(compose, monkeypatch):
    prometheus = compose["services"]["prometheus"]
    config_file = host_file_for(prometheus, "/etc/prometheus/prometheus.yml")
    assert config_file is not None and config_file.exists()
    config = yaml.safe_load(config_file.read_text())
    for rule_file in config["rule_files"]:
        mounted = host_file_for(prometheus, str(PurePosixPath("/etc/prometheus") / rule_file))
        assert mounted == DEPLOY / "prometheus" / "alerts.yml", f"{rule_file} is not the project's alerts.yml"
    targets = {job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
               for job in config["scrape_configs"]}
    # alerts.yml matches on these job names: keep them as in the host configuration
    host_config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert set(targets) == {job["job_name"] for job in host_config["scrape_configs"]}
    scraped = set()
    for job, addresses in targets.items():
        for address in addresses:
            host, port = address.rsplit(":", 1)
            assert host in METRICS_PORT_FIELD, f"{job}: {host} is not a pgtrail service of the compose file"
            cls, field = METRICS_PORT_FIELD[host]
            assert int(port) == default(cls, field), f"{job}: {address}, but {host} listens on {default(cls, field)}"
            scraped.add(host)
    assert scraped == set(METRICS_PORT_FIELD)


def test_grafana_is_provisioned_with_prometheus_and_the_dashboard(compose):
    grafana = compose["services"]["grafana"]
    provisioning = host_file_for(grafana, "/etc/grafana/provisioning")
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    sources = [s for f in (provisioning / "datasources").glob("*.yaml")
               for s in yaml.safe_load(f.read_text())["datasources"]]
    prometheus = [s for s in sources if s["type"] == "prometheus"]
    assert len(prometheus) == 1 and prometheus[0]["isDefault"], "the dashboard's ${datasource} needs the default"
    host_port = prometheus[0]["url"].split("://", 1)[1].rstrip("/")
    host, port = host_port.split(":")
    assert host == "prometheus" and int(port) in container_ports(compose["services"]["prometheus"])
    providers = [p for f in (provisioning / "dashboards").glob("*.yaml")
                 for p in yaml.safe_load(f.read_text())["providers"]]
    dashboards = []
    for provider in providers:
        folder = provider["options"]["path"]
        dashboards += [host_file_for(grafana, t) for s, t in mounts(grafana)
                       if PurePosixPath(folder) in PurePosixPath(t).parents or t == folder]
    assert DEPLOY / "grafana" / "pgtrail-dashboard.json" in dashboards
    assert all(d is not None and d.exists() for d in dashboards)


# ------------------------------------------------------------------ images
def test_pgtrail_image():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert stages[-1] == "python:3.11-slim"
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT\s+\["pgtrail"\]', text, re.M)
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}
    assert {default(cls, field) for cls, field in METRICS_PORT_FIELD.values()} <= exposed


def test_build_context_admits_every_package_and_the_wheel_carries_the_sql():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = project["tool"]["setuptools"]
    admitted = {line[1:].strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.startswith("!")}
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")
                if any(fnmatch(p.parent.name, pat) for pat in setuptools["packages"]["find"]["include"])}
    needed = packages | {"pyproject.toml", project["project"]["readme"]}
    assert packages and needed <= admitted, f"add to .dockerignore: {sorted('!' + n for n in needed - admitted)}"
    # pgtrail install reads sql/<part>/*.sql from the installed package, not from a checkout
    for package, patterns in setuptools["package-data"].items():
        base = ROOT / package
        shipped = {f for pat in patterns for f in base.glob(pat)}
        missing = {f.relative_to(ROOT) for f in base.rglob("*.sql")} - {f.relative_to(ROOT) for f in shipped}
        assert not missing, f"not in the wheel: {sorted(map(str, missing))}"
    assert "sql" in setuptools["package-data"]


# ------------------------------------------------------------------ systemd
def unit_entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) in order; systemd allows a key more than once, so no dict."""
    section, entries = "", []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, value = line.split("=", 1)
            entries.append((section, key.strip(), value.strip()))
    return entries


def example_env() -> dict[str, str]:
    """Every assignment of the example, commented ones included: they document real settings too."""
    return {m.group(1): m.group(2) for m in map(ASSIGNMENT.match, ENV_EXAMPLE.read_text().splitlines()) if m}


def test_env_example_names_real_settings_and_every_line_validates(monkeypatch):
    env = example_env()
    unknown = set(env) - VALID_ENV
    assert not unknown, f"{sorted(unknown)} are not settings pgtrail reads"
    active = {m.group(1) for m in map(re.compile(r"^(PGTRAIL_[A-Z0-9_]+)=").match,
                                      ENV_EXAMPLE.read_text().splitlines()) if m}
    assert REQUIRED_ENV["consume"] | REQUIRED_ENV["sink"] <= active
    load_settings(monkeypatch, env)


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_systemd_unit_runs_a_real_command_hardened(unit):
    entries = unit_entries(unit)
    service = {}
    for section, key, value in entries:
        if section == "Service":
            service.setdefault(key, []).append(value)
    argv = shlex.split(service["ExecStart"][0])
    assert PurePosixPath(argv[0]).name == "pgtrail"
    assert argv[1] in subcommands() and parses(argv[1:]), f"{unit.name}: `{' '.join(argv)}` is not a valid command"
    assert [PurePosixPath(f.lstrip("-")).name for f in service["EnvironmentFile"]] == [ENV_EXAMPLE.name[:-len(".example")]]
    for assignment in service.get("Environment", []):
        for name in re.findall(r"(\w+)=", assignment):
            assert name in VALID_ENV or not name.startswith("PGTRAIL_"), f"{unit.name}: {name} is not a setting"
    assert service["User"][0] not in ("root", "0")
    expected = {"Restart": "on-failure", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": ""}
    assert {k: service.get(k, [None])[-1] for k in expected} == expected


def test_systemd_units_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:  # `make setup` installs it (scripts/services.sh): never skip
        pytest.fail("systemd-analyze is not installed: run `make setup`", pytrace=False)
    # verify insists the ExecStart binary exists: point it at this checkout's pgtrail
    pgtrail = Path(sys.executable).parent / "pgtrail"
    copies = []
    for unit in UNITS:
        copy = tmp_path / unit.name
        copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={pgtrail}", unit.read_text(), flags=re.M))
        copies.append(str(copy))
    run = subprocess.run(["systemd-analyze", "verify", *copies], capture_output=True, text=True)
    complaints = [line for line in (run.stdout + run.stderr).splitlines() if any(u.name in line for u in UNITS)]
    assert run.returncode == 0 and not complaints, run.stdout + run.stderr
