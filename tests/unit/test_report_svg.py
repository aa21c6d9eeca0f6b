"""The report's pure parts: SVG charts carry their figures in data-* attributes, escape what they
show, mark simulated data; times and durations read as people say them; the page is self-contained."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from pgtrail import report_html as rh
from pgtrail.reports import render_dashboard

T0 = datetime(2026, 12, 4, 9, tzinfo=timezone.utc)


def svg(text: str) -> ET.Element:
    return ET.fromstring(text[: text.index("</svg>") + 6])


def test_bar_chart_carries_each_figure_and_escapes_labels():
    bars = [rh.Bar("alice", 12, {"actor": "alice"}), rh.Bar("<b>x</b>", 3, {"actor": "<b>x</b>"}, text="3 rows"),
            rh.Bar("ghost", 1, {"actor": "ghost"}, simulated=True)]
    root = svg(rh.bar_chart("by-actor", bars))
    assert root.get("data-chart") == "by-actor"
    groups = root.findall("{*}g") or root.findall("g")
    assert [(g.get("data-actor"), g.get("data-count")) for g in groups] == [("alice", "12"), ("<b>x</b>", "3"),
                                                                           ("ghost", "1")]
    widths = [float(g.find("rect").get("width")) for g in groups]
    assert widths[0] > widths[1] > widths[2] > 0 and abs(widths[0] / widths[1] - 4) < 0.01
    assert "3 rows" in ET.tostring(groups[1], encoding="unicode")
    assert "simulated" in groups[2].get("class") and "[simulated]" in "".join(groups[2].itertext())
    assert groups[2].find("rect").get("fill") == "url(#hatch)"
    assert "<b>" not in rh.bar_chart("by-actor", bars)
    assert 'class="empty"' in rh.bar_chart("by-actor", [])


def test_stacked_columns_one_segment_per_cell_stacked_to_scale():
    cells = [rh.Cell(T0, "ddl", 2), rh.Cell(T0, "dml", 6), rh.Cell(T0 + timedelta(hours=3), "dml", 4, {"db": "crm"})]
    root = svg(rh.stacked_columns("events", cells, rh.HOUR))
    scale, base = float(root.get("data-scale")), float(root.get("data-base"))
    segs = [r for r in root.iter("rect") if r.get("class") == "seg"]
    assert [(s.get("data-kind"), s.get("data-start"), s.get("data-count")) for s in segs] == [
        ("ddl", T0.isoformat(), "2"), ("dml", T0.isoformat(), "6"),
        ("dml", (T0 + timedelta(hours=3)).isoformat(), "4")]
    assert segs[2].get("data-db") == "crm" and root.get("data-bucket") == "hour"
    for s in segs:
        assert abs(float(s.get("height")) - int(s.get("data-count")) * scale) < 0.1
    # stacked: ddl at the bottom, dml above it; the 3-hour gap stays a gap on the time axis
    assert abs(float(segs[0].get("y")) + float(segs[0].get("height")) - base) < 0.1
    assert abs(float(segs[1].get("y")) + float(segs[1].get("height")) - float(segs[0].get("y"))) < 0.1
    step = float(segs[2].get("x")) - float(segs[0].get("x"))
    assert step > 0 and [t.text for t in root.iter("text")].count("12-04 09h") == 1
    assert 'class="empty"' in rh.stacked_columns("events", [], rh.HOUR)


def test_a_long_period_is_drawn_in_days_summed_exactly():
    hours = [T0.replace(hour=0) + timedelta(hours=h) for h in range(0, 24 * 10, 5)]  # ten UTC days
    assert rh.bucket_for(hours[:10]) == rh.HOUR and rh.bucket_for(hours) == rh.DAY
    cells = [rh.Cell(h, "dml", 1) for h in hours]
    days = rh.rollup(cells, rh.DAY)
    assert sum(c.count for c in days) == len(hours)
    assert all(c.start.hour == 0 for c in days) and len(days) == 10
    assert rh.rollup(cells, rh.HOUR) == cells


def test_times_and_durations_read_as_people_say_them():
    assert [rh.duration(v) for v in (None, 4.25, 850, 1234, 59_990, 61_000, 7_800_000, 90_000_000)] == [
        "-", "4.2 ms", "850 ms", "1.2 s", "1 min", "1 min 1 s", "2 h 10 min", "1 d 1 h"]
    now = T0 + timedelta(days=3)
    assert [rh.ago(now - d, now) for d in (timedelta(seconds=5), timedelta(minutes=7), timedelta(hours=5),
                                           timedelta(days=3))] == ["just now", "7 min ago", "5 h ago", "3 days ago"]
    assert rh.ago(None, now) == "never" and rh.when(T0) == "2026-12-04 09:00:00 UTC"


def test_dashboard_last_activity_is_a_time_not_an_epoch():
    at = T0 - timedelta(minutes=12)
    rows = [{"section": "last activity", "name": "crm", "value": at.timestamp(), "detail": {"at": at.isoformat()}},
            {"section": "last activity", "name": "idle", "value": None, "detail": {"at": None}},
            {"section": "slowest scripts", "name": "V1.sql", "value": 125_000.0, "detail": None}]
    text = render_dashboard(rows, now=T0)
    assert "12 min ago" in text and "2026-12-04 08:48:00 UTC" in text and "2 min 5 s" in text
    assert "never  idle" in text
    assert str(int(at.timestamp())) not in text and f"{at.timestamp():,.0f}"[:9] not in text


def test_page_is_self_contained_sortable_and_escapes_everything():
    evil = "<script>alert(1)</script>"
    f = rh.Figures(
        now=T0, since=T0 - timedelta(days=30), days=30,
        hourly=[{"database_name": evil, "kind": "ddl", "hour": T0.replace(tzinfo=None), "n": 3}],
        actors=[{"actor": evil, "ddl": 3, "dml": 0}], objects=[{"database_name": evil, "object": evil, "n": 3}],
        sensitive=[], totals={"events": 3, "actors": 1, "sensitive": 0, "databases": [evil], "tenants": [evil],
                              "kinds": ["ddl"]},
        dashboard=[{"section": "last activity", "name": evil, "value": 1.7e9, "detail": {"at": T0.isoformat()}},
                   {"section": "untracked DDL", "name": evil, "value": 3.0,
                    "detail": {"last": T0.isoformat(), "by": [evil]}}],
        executions=[], recent=[])
    page = rh.page(f)
    assert page.startswith("<!doctype html>") and evil not in page and "&lt;script&gt;" in page
    assert page.count("<script>") == 1 and "http://" not in page and "https://" not in page
    assert "table.sortable" in page and 'data-filter="db"' in page and "1,700,000,000" not in page
    assert 'data-kind="ddl" data-start="2026-12-04T09:00:00+00:00" data-count="3"' in page


def test_figures_flagged_simulated_are_drawn_apart_and_marked():
    hour = T0.replace(tzinfo=None)
    f = rh.Figures(
        now=T0, since=T0 - timedelta(days=1), days=1,
        hourly=[{"database_name": "crm", "kind": "log_import", "hour": hour, "n": 5, "simulated": True},
                {"database_name": "crm", "kind": "log_import", "hour": hour, "n": 2, "simulated": False}],
        actors=[{"actor": "ghost", "ddl": 1, "dml": 0, "simulated": True}], objects=[], sensitive=[],
        totals={"events": 7, "actors": 1, "sensitive": 0, "databases": ["crm"], "tenants": [], "kinds": ["log_import"]},
        dashboard=[], executions=[], recent=[{"simulated": True, "kind": "log_import", "commit_time": T0,
                                             "database_name": "crm", "tenant_id": None, "action": "SELECT",
                                             "object_identity": None, "session_user_name": "ghost",
                                             "application_name": None, "tags": [], "ticket_number": None,
                                             "statement": "select 1", "status": "completed", "error": None,
                                             "log_duration_ms": 1.0}])
    page = rh.page(f)
    assert page.count('class="seg simulated"') == 1 and page.count('class="seg"') == 1
    assert "ghost [simulated]" in page and "<tr class=simulated" in page and "[SIMULATED]" in page
