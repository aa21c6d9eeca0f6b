"""The dashboard and the alert rules use only metrics the services export, and a real
Prometheus scrapes the running services and evaluates every alert expression."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote
from urllib.request import urlopen

import pytest

from tests.integration.conftest import ROOT, free_port, wait_until

DEPLOY = ROOT / "deploy"
NAME = re.compile(r"\bpgtrail_[a-z0-9_]+")
BUILTIN_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def exported_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def used_names() -> dict[str, set[str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "pgtrail-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return {"dashboard": set(NAME.findall("\n".join(exprs))),
            "alerts": set(NAME.findall((DEPLOY / "prometheus" / "alerts.yml").read_text()))}


@pytest.fixture
def running(pipeline):
    pipeline.env["PGTRAIL_HEARTBEAT_INTERVAL"] = "1"
    pipeline.start("consumer")
    pipeline.start("sink")
    with pipeline.source() as conn:  # some traffic, so that labelled series exist
        conn.execute("create table obs (id int primary key, email text)")
        conn.execute("select script_tracking.track_table('obs')")
        conn.execute("insert into obs values (1, 'a@example.com')")
    wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_row_change where table_name = 'obs'"),
               60, what="traffic in the vault")
    return pipeline


def test_every_metric_used_by_the_dashboard_and_the_rules_is_exported(running):
    exported = set()
    for port in (running.consumer_port, running.sink_port):
        exported |= exported_names(urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    for where, names in used_names().items():
        assert names, where
        for name in names:
            base = name
            for suffix in BUILTIN_SUFFIXES:
                if name.endswith(suffix) and name not in exported:
                    base = name[: -len(suffix)]
            assert name in exported or base in exported, f"{where} uses {name}, which no service exports"


def test_promtool_accepts_the_rules_and_the_config():
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/services.sh install puts Debian's prometheus in place"
    for args in (["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                 ["check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")]):
        proc = subprocess.run([promtool, *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_real_prometheus_scrapes_the_services_and_evaluates_every_alert(running, tmp_path):
    prometheus = shutil.which("prometheus")
    assert prometheus, "prometheus missing: scripts/services.sh install puts Debian's prometheus in place"
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{DEPLOY / 'prometheus' / 'alerts.yml'}"]
scrape_configs:
  - job_name: pgtrail-consumer
    static_configs: [{{targets: ["127.0.0.1:{running.consumer_port}"]}}]
  - job_name: pgtrail-sink
    static_configs: [{{targets: ["127.0.0.1:{running.sink_port}"]}}]
""")
    log = open(tmp_path / "prometheus.log", "wb")
    proc = subprocess.Popen([prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api/v1"

    def get(path):
        return json.loads(urlopen(api + path, timeout=5).read())

    try:
        def targets_up():
            try:
                targets = get("/targets")["data"]["activeTargets"]
            except OSError:
                return False
            return len(targets) == 2 and all(t["health"] == "up" for t in targets)
        wait_until(targets_up, 60, what="Prometheus to scrape both services")

        def rules_evaluated():
            groups = get("/rules")["data"]["groups"]
            rules = [r for g in groups for r in g["rules"]]
            return rules if rules and all(r["health"] != "unknown" for r in rules) else None
        rules = wait_until(rules_evaluated, 60, what="every rule to be evaluated")
        assert len(rules) == (DEPLOY / "prometheus" / "alerts.yml").read_text().count("- alert:") >= 14
        for rule in rules:
            assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
            result = get("/query?query=" + quote(rule["query"]))
            assert result["status"] == "success", (rule["name"], result)
        # the scraped data is real: the consumer published the traffic
        published = get("/query?query=" + quote("sum(pgtrail_consumer_events_published_total)"))
        assert float(published["data"]["result"][0]["value"][1]) >= 1
        # and every dashboard query evaluates too
        dashboard = json.loads((DEPLOY / "grafana" / "pgtrail-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                assert get("/query?query=" + quote(target["expr"]))["status"] == "success", target["expr"]
    finally:
        proc.terminate()
        proc.wait(30)
