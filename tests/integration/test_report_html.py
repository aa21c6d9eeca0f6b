"""`pgtrail report` in a real browser: events of several people, tenants, tracked and untracked
DDL, sensitive rows and a failed script go through the whole pipeline; the page is rendered by
headless Chromium and the figures its charts carry in the rendered DOM must be the vault's own
counts, queried here independently. A screenshot goes to .pgtrail/report.png for people to see."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from html.parser import HTMLParser

import psycopg
import pytest

from tests.integration.conftest import ROOT, wait_until
from tests.integration.test_reporting import pgtrail

CHROMIUM = "chromium"   # Debian's package (scripts/services.sh installs it)
HOSTILE = "<img src=x onerror=alert(1)>"


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    exe = shutil.which(CHROMIUM)
    if exe is None:  # the report is checked in a real browser or not at all: never a skip
        pytest.fail("chromium is not installed; run `make setup` (scripts/services.sh installs it)", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="pgtrail-chromium-") as profile:
        return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                               "--disable-background-networking", "--disable-component-update", "--disable-sync",
                               f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, check=True)


class Dom(HTMLParser):
    """The rendered DOM's charts (svg attributes; rect.seg and g.bar by data-chart), table rows
    (tr attributes and their cells' attributes, by data-table) and how often each tag occurs."""

    def __init__(self, text: str):
        super().__init__()
        self.chart: str | None = None
        self.table: str | None = None
        self.charts: dict[str, dict] = {}
        self.points: dict[str, list[dict]] = {}
        self.rows: dict[str, list[tuple[dict, list[dict]]]] = {}
        self.tags: dict[str, int] = {}
        self.root: dict = {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        if tag == "html":
            self.root = a
        if tag == "svg" and "data-chart" in a:
            self.chart = a["data-chart"]
            self.charts.setdefault(self.chart, a)
        if tag == "table":
            self.table = a.get("data-table")
        if tag == "tr" and self.table and "data-kind" in a:
            self.rows.setdefault(self.table, []).append((a, []))
        if tag == "td" and self.table in self.rows:
            self.rows[self.table][-1][1].append(a)
        classes = (a.get("class") or "").split()
        if self.chart and (tag == "rect" and "seg" in classes or tag == "g" and "bar" in classes):
            self.points.setdefault(self.chart, []).append(a)

    def handle_endtag(self, tag):
        if tag == "svg":
            self.chart = None
        if tag == "table":
            self.table = None


def hidden(attrs: dict) -> bool:
    return "off" in (attrs.get("class") or "").split()


def rows(vault: psycopg.Connection, sql: str) -> dict:
    return {tuple(r[:-1]) if len(r) > 2 else r[0]: r[-1] for r in vault.execute(sql).fetchall()}


def test_report_in_chromium_shows_the_vaults_counts(pipeline, tmp_path):
    tag = uuid.uuid4().hex[:6]
    people = [f"alice_{tag}", f"bob_{tag}"]
    with pipeline.source() as admin:
        for p in people:
            admin.execute(f"create role {p}")
    try:
        pipeline.start("consumer")
        pipeline.start("sink")
        with pipeline.source() as conn:
            conn.execute("set application_name = 'report-test'")
            conn.execute("create table customers (id int primary key, email text, plan text)")
            conn.execute("create table invoices (id int primary key, customer int, amount numeric)")
            conn.execute("select script_tracking.track_table('customers'), script_tracking.track_table('invoices')")
            conn.execute(f"grant select, insert, update, delete on customers, invoices to {', '.join(people)}")
            conn.execute("select script_tracking.run_tracked_script('V003__plan.sql', "
                         "'create index on public.customers (plan)', 'MIGRATION', 'DDL', 'db/V003__plan.sql', '3', "
                         "null, 'faster plan lookups', 'CRM-31')")
            with pytest.raises(psycopg.errors.UndefinedTable):
                with conn.transaction():
                    conn.execute("select script_tracking.run_tracked_script('V004__broken.sql', "
                                 "'insert into no_such_table values (1)', 'MIGRATION', 'DML')")
            for i, (person, tenant) in enumerate([(people[0], "acme"), (people[1], "globex")]):
                conn.execute(f"set session authorization {person}")
                conn.execute(f"set pgtrail.tenant_id = '{tenant}'")
                conn.execute(f"insert into customers select g, 'u' || g || '@example.com', 'free' "
                             f"from generate_series({i * 10 + 1}, {i * 10 + 4 + 3 * i}) g")
                conn.execute(f"update customers set plan = 'pro' where id = {i * 10 + 1}")
                conn.execute(f"insert into invoices values ({i + 1}, {i * 10 + 1}, 9.5)")
                conn.execute("reset session authorization")
                conn.execute("reset pgtrail.tenant_id")
            conn.execute("alter table invoices add column note text")   # by hand: untracked
            conn.execute(f'create table "{HOSTILE}" (id int)')            # a name the page must escape
            op = conn.execute("select track_operation('report test done', 'TESTING')").fetchone()[0]
        wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_operation where operation_id = %s",
                                                (op,)), 90, what="the last event in the vault")
        wait_until(lambda: pipeline.vault_count("select count(*) from vault.sat_row_change") >= 15, 90,
                   what="the row changes in the vault")
        settled = []
        wait_until(lambda: settled.append(pipeline.vault_count("select count(*) from vault.link_event"))
                   or settled[-3:] == [settled[-1]] * 3, 60, interval=1, what="the vault to settle")

        report = tmp_path / "report.html"
        pgtrail(pipeline, "report", "-o", str(report), "--days", "2")
        page = report.read_text()
        dom = Dom(chromium("--dump-dom", report.as_uri()).stdout)

        with pipeline.vault() as vault:
            # an event's time as the vault's history view defines it (a commit, else a script step's time)
            per_hour = rows(vault, """select database_name, kind, to_char(date_trunc('hour', commit_time at time zone
                                      'UTC'), 'YYYY-MM-DD"T"HH24:00:00+00:00'), count(*) from vault.event_history
                                      group by 1, 2, 3""")
            by_actor = rows(vault, "select coalesce(session_user_name, '(unknown)'), count(*) from vault.link_event "
                                   "where kind in ('ddl', 'dml') group by 1")
            sensitive = rows(vault, """select tag, to_char(date_trunc('hour', commit_time at time zone 'UTC'),
                                       'YYYY-MM-DD"T"HH24:00:00+00:00'), count(*) from vault.link_event,
                                       unnest(tags) tag where kind = 'dml' group by 1, 2""")
            untracked = vault.execute("select count(*) from vault.sat_ddl where untracked").fetchone()[0]
            failed = vault.execute("select count(*) from vault.sat_script_execution "
                                   "where status = 'failed'").fetchone()[0]

        assert dom.root.get("data-js") == "ready", "the page's script did not run"
        assert {(p["data-db"], p["data-kind"], p["data-start"]): int(p["data-count"])
                for p in dom.points["events-per-hour"]} == per_hour
        assert {p["data-kind"] for p in dom.points["events-per-hour"]} >= {"ddl", "dml", "script", "operation"}
        assert {p["data-actor"]: float(p["data-count"]) for p in dom.points["changes-by-actor"]} == by_actor
        assert {people[0], people[1], "postgres"} <= set(by_actor)
        assert {(p["data-tag"], p["data-start"]): int(p["data-count"])
                for p in dom.points["sensitive-changes"]} == sensitive and sensitive
        assert sum(float(p["data-count"]) for p in dom.points["untracked-ddl"]) == untracked >= 3
        fails = {p["data-category"]: float(p["data-count"]) for p in dom.points["failures"]}
        assert fails["failed script executions"] == failed == 1
        assert [p["data-script"] for p in dom.points["slowest-scripts"]].count("V003__plan.sql") == 1
        # humanised: no epoch number for the last activity, no script blocked from running
        assert "ago" in page or "just now" in page
        epoch = int(time.time())
        assert str(epoch)[:7] not in page and f"{epoch:,}"[:7] not in page
        # self-contained and escaped: nothing fetched, and the hostile table name stays text
        assert "http://" not in page and "https://" not in page and "<link" not in page
        assert dom.tags.get("img", 0) == 0 and HOSTILE.replace("<", "&lt;").replace(">", "&gt;") in page

        # a filter, as a link carries it: other kinds hidden in charts and tables, what stays restacked
        dml = Dom(chromium("--dump-dom", report.as_uri() + "#kind=dml").stdout)
        svg = dml.charts["events-per-hour"]
        base, scale = float(svg["data-base"]), float(svg["data-scale"])
        for seg in dml.points["events-per-hour"]:
            assert hidden(seg) == (seg["data-kind"] != "dml"), seg
            if seg["data-kind"] == "dml":
                assert abs(float(seg["y"]) + int(seg["data-count"]) * scale - base) < 0.2, seg
        recent = dml.rows["recent"]
        assert {tr["data-kind"] for tr, _ in recent if not hidden(tr)} == {"dml"}
        assert any(hidden(tr) for tr, _ in recent) and all(hidden(tr) for tr, _ in recent if tr["data-kind"] != "dml")
        # sorting, clicked as a person would: by time, oldest first, then newest first
        def sorted_by_time(clicks: int) -> list[str]:
            clicked = tmp_path / f"clicked{clicks}.html"
            clicked.write_text(page.replace("</body>", "<script>" + "document.querySelector("
                                            "'table[data-table=recent] th').click();" * clicks + "</script></body>"))
            return [cells[0]["data-sort"] for _, cells in Dom(chromium("--dump-dom", clicked.as_uri()).stdout)
                    .rows["recent"]]
        times = [cells[0]["data-sort"] for _, cells in dom.rows["recent"]]
        assert sorted_by_time(1) == sorted(times) and sorted_by_time(2) == sorted(times, reverse=True)
        assert len(set(times)) > 1

        out = ROOT / ".pgtrail"
        out.mkdir(exist_ok=True)
        shutil.copyfile(report, out / "report.html")
        chromium(f"--screenshot={out / 'report.png'}", "--window-size=1400,2400", "--hide-scrollbars",
                 report.as_uri())
        assert (out / "report.png").stat().st_size > 10_000
    finally:
        with pipeline.source() as admin:
            for p in people:
                admin.execute(f"drop owned by {p}")
                admin.execute(f"drop role {p}")
