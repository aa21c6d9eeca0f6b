"""The HTML report's page, built from figures already read from the vault (pgtrail/reports.py).

Pure functions, no I/O: charts are inline SVG made here, the page carries its own CSS and a small
script (sorting, filters), so the file opens anywhere without a network. Every figure a chart
draws is also in data-* attributes of its element (data-kind, data-count, ...): a browser test reads
the numbers back from the rendered DOM. Every text from the database goes through `esc`.

Anything with `simulated` set (a bar, a stacked cell, a table row; each figure's row may carry the
flag) is drawn hatched and labelled "[simulated]", so showing simulated history takes only the
vault's rows with the flag (reports.html_report's include_simulated).
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Sequence

from pgtrail import history

KIND_COLOURS = {"ddl": "#7c3aed", "dml": "#2563eb", "script": "#ea580c", "operation": "#059669",
                "log_import": "#a16207", "security": "#dc2626", "heartbeat": "#9ca3af"}
_PALETTE = ("#0891b2", "#db2777", "#65a30d", "#9333ea", "#d97706", "#0f766e", "#be123c", "#4f46e5")
SIMULATED = " [simulated]"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def colour(key: str) -> str:
    """A kind's own colour; any other series a stable one of the palette."""
    return KIND_COLOURS.get(key) or _PALETTE[sum(map(ord, key)) % len(_PALETTE)]


def data_attrs(attrs: Mapping[str, Any]) -> str:
    return "".join(f' data-{k}="{esc(v)}"' for k, v in attrs.items() if v is not None)


# ------------------------------------------------------------------ humanised figures
def duration(ms: float | None) -> str:
    """850 ms, 12.3 s, 4 min 5 s, 2 h 10 min, 3 d 4 h."""
    if ms is None or (isinstance(ms, float) and math.isnan(ms)):
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    s = round(ms / 1000, 1)
    if s < 60:
        return f"{s:.1f} s"
    size, unit, sub_size, sub = ((60, "min", 1, "s") if s < 3600 else (3600, "h", 60, "min") if s < 86400
                                 else (86400, "d", 3600, "h"))
    whole, rest = divmod(int(s), size)
    rest //= sub_size
    return f"{whole} {unit} {rest} {sub}" if rest else f"{whole} {unit}"


def when(at: datetime | None) -> str:
    """An absolute UTC time, to the second."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "-"


def ago(at: datetime | None, now: datetime) -> str:
    """How long before `now`: 'just now', '5 min ago', '3 h ago', '12 days ago'."""
    if at is None:
        return "never"
    s = (now - at).total_seconds()
    if s < 0:
        return "in the future"
    if s < 60:
        return "just now"
    if s < 3600:
        return f"{int(s // 60)} min ago"
    if s < 86400:
        return f"{int(s // 3600)} h ago"
    return f"{int(s // 86400)} days ago"


def number(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.1f}"


# ------------------------------------------------------------------ charts
@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, its value, what the DOM says about it (data-*), how it reads."""
    label: str
    value: float
    attrs: Mapping[str, Any] = field(default_factory=dict)
    text: str | None = None
    simulated: bool = False


@dataclass(frozen=True)
class Cell:
    """One series' count in one time bucket of a stacked column chart."""
    start: datetime
    key: str
    count: int
    attrs: Mapping[str, Any] = field(default_factory=dict)
    simulated: bool = False


def bar_chart(name: str, bars: Sequence[Bar], empty: str = "nothing in this period") -> str:
    """Horizontal bars, largest first as given; each `<g class="bar">` carries data-count."""
    if not bars:
        return f'<p class="empty" data-chart="{esc(name)}">{esc(empty)}</p>'
    row, label_w, width = 24, 236, 640
    plot_w = width - label_w - 150
    peak = max(b.value for b in bars) or 1
    out = [f'<svg class="chart bars" data-chart="{esc(name)}" viewBox="0 0 {width} {row * len(bars) + 8}" '
           f'width="100%" role="img" aria-label="{esc(name)}">']
    for i, b in enumerate(bars):
        y = 4 + i * row
        w = max(2.0, plot_w * b.value / peak)
        label = b.label + (SIMULATED if b.simulated else "")
        shown = b.text if b.text is not None else number(b.value)
        fill = "url(#hatch)" if b.simulated else "var(--bar)"
        out.append(f'<g class="bar{" simulated" if b.simulated else ""}" data-label="{esc(b.label)}" '
                   f'data-count="{esc(b.value)}"{data_attrs(b.attrs)}><title>{esc(label)}: {esc(shown)}</title>'
                   f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" class="lbl">{esc(_clip(label, 30))}</text>'
                   f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="3" fill="{fill}"/>'
                   f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" class="val">{esc(shown)}</text></g>')
    out.append("</svg>")
    return "".join(out)


def bucket_for(starts: Sequence[datetime]) -> timedelta:
    """Hours while the data spans a week at most, else days: a column stays wider than a pixel."""
    return HOUR if not starts or max(starts) - min(starts) <= timedelta(days=7) else DAY


def rollup(cells: Sequence[Cell], bucket: timedelta) -> list[Cell]:
    """Hourly cells summed into `bucket`-long ones (hours are given; days are UTC days)."""
    if bucket == HOUR:
        return list(cells)
    sums: dict[tuple, Cell] = {}
    for c in cells:
        start = c.start.replace(hour=0, minute=0, second=0, microsecond=0)
        key = (start, c.key, tuple(sorted(c.attrs.items())), c.simulated)
        prev = sums.get(key)
        sums[key] = Cell(start, c.key, c.count + (prev.count if prev else 0), c.attrs, c.simulated)
    return sorted(sums.values(), key=lambda c: (c.start, c.key))


def stacked_columns(name: str, cells: Sequence[Cell], bucket: timedelta, key_attr: str = "kind",
                    empty: str = "nothing in this period") -> str:
    """Columns over time, one per bucket from the first to the last, each stacked by key.
    Every segment is a `<rect class="seg">` with data-<key_attr>, data-start (ISO, UTC) and
    data-count; the page's script restacks the visible segments when a filter hides some."""
    if not cells:
        return f'<p class="empty" data-chart="{esc(name)}">{esc(empty)}</p>'
    width, height, left, bottom, top = 1000, 240, 48, 34, 10
    first, last = min(c.start for c in cells), max(c.start for c in cells)
    n = int((last - first) / bucket) + 1
    plot_w, plot_h = width - left - 10, height - bottom - top
    step = plot_w / n
    col_w = max(1.0, min(48.0, step * 0.8))
    by_start: dict[datetime, list[Cell]] = {}
    for c in cells:
        by_start.setdefault(c.start, []).append(c)
    peak = _nice(max(sum(c.count for c in group) for group in by_start.values()))
    scale = plot_h / peak
    base = top + plot_h
    keys = sorted({c.key for c in cells})
    out = [f'<svg class="chart stack" data-chart="{esc(name)}" data-bucket="{"hour" if bucket == HOUR else "day"}" '
           f'data-base="{base}" data-scale="{scale:.6f}" viewBox="0 0 {width} {height}" width="100%" role="img" '
           f'aria-label="{esc(name)}">']
    for i in range(5):  # the y axis: five lines from 0 to the (rounded up) peak
        v = peak * i / 4
        y = base - v * scale
        out.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">{number(v)}</text>')
    every = max(1, math.ceil(n / 10))
    fmt = "%m-%d %Hh" if bucket == HOUR else "%Y-%m-%d"
    for i in range(0, n, every):
        x = left + step * i + step / 2
        out.append(f'<text x="{x:.1f}" y="{height - 12}" text-anchor="middle" class="axis">'
                   f'{esc((first + bucket * i).strftime(fmt))}</text>')
    for start in sorted(by_start):
        x = left + step * int((start - first) / bucket) + (step - col_w) / 2
        y = base
        total = sum(c.count for c in by_start[start])
        out.append(f'<g class="col" data-start="{esc(start.isoformat())}" data-total="{total}">')
        for c in sorted(by_start[start], key=lambda c: keys.index(c.key)):
            h = c.count * scale
            y -= h
            fill = "url(#hatch)" if c.simulated else colour(c.key)
            label = f"{c.key}{SIMULATED if c.simulated else ''}: {c.count} at {start.strftime(fmt)}"
            out.append(f'<rect class="seg{" simulated" if c.simulated else ""}" x="{x:.1f}" y="{y:.1f}" '
                       f'width="{col_w:.1f}" height="{h:.1f}" fill="{fill}" data-{esc(key_attr)}="{esc(c.key)}" '
                       f'data-start="{esc(start.isoformat())}" data-count="{c.count}"{data_attrs(c.attrs)}>'
                       f'<title>{esc(label)}</title></rect>')
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(f'<span class="key" data-{esc(key_attr)}="{esc(k)}"><i style="background:{colour(k)}"></i>'
                     f'{esc(k)}</span>' for k in keys)
    return "".join(out) + f'<div class="legend">{legend}</div>'


def _nice(peak: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `peak`, so the axis reads round."""
    if peak <= 4:
        return 4
    mag = 10 ** math.floor(math.log10(peak))
    return next(m * mag for m in (1, 2, 4, 5, 10) if m * mag >= peak)


def _clip(text: str, width: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------ tables
@dataclass(frozen=True)
class Column:
    """A table column: header, how a row shows in it, and (optionally) the value it sorts by."""
    header: str
    show: Callable[[dict], Any]
    sort: Callable[[dict], Any] | None = None
    width: int = 120
    cls: str = ""


def table(name: str, columns: Sequence[Column], rows: Sequence[dict], filters: Callable[[dict], dict] = dict,
          empty: str = "nothing in this period") -> str:
    """A sortable table (click a header); each row carries its filter attributes (data-db, ...)."""
    if not rows:
        return f'<p class="empty" data-table="{esc(name)}">{esc(empty)}</p>'
    head = "".join(f'<th scope="col">{esc(c.header)}</th>' for c in columns)
    body = []
    for r in rows:
        sim = bool(r.get("simulated"))
        cells = []
        for c in columns:
            shown = c.show(r)
            text = _clip(shown, c.width) if isinstance(shown, str) else shown
            key = f' data-sort="{esc(c.sort(r))}"' if c.sort else ""
            title = f' title="{esc(shown)}"' if isinstance(shown, str) and len(shown) > c.width else ""
            cls = f' class="{c.cls}"' if c.cls else ""
            cells.append(f"<td{cls}{key}{title}>{esc('-' if text is None or text == '' else text)}</td>")
        body.append(f'<tr{" class=simulated" if sim else ""}{data_attrs(filters(r))}>{"".join(cells)}</tr>')
    return (f'<div class="scroll"><table class="sortable" data-table="{esc(name)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


# ------------------------------------------------------------------ the page
@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    note: str = ""
    alert: bool = False


@dataclass
class Page:
    """What the page shows, in order: figures at the top, then its sections (section_html)."""
    title: str
    subtitle: str
    tiles: list[Tile]
    sections: list[str]
    databases: list[str]
    tenants: list[str]
    kinds: list[str]


def section_html(heading: str, note: str, body: str, wide: bool = True) -> str:
    return (f'<section class="card{" wide" if wide else ""}"><h2>{esc(heading)}</h2>'
            + (f'<p class="note">{esc(note)}</p>' if note else "") + body + "</section>")


def render(page: Page) -> str:
    def select(dim: str, label: str, values: list[str]) -> str:
        opts = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)
        return (f'<label>{esc(label)} <select data-filter="{dim}"><option value="">all</option>{opts}'
                f'</select></label>')
    tiles = "".join(f'<div class="tile{" alert" if t.alert else ""}"><div class="tv">{esc(t.value)}</div>'
                    f'<div class="tl">{esc(t.label)}</div><div class="tn">{esc(t.note)}</div></div>'
                    for t in page.tiles)
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width,initial-scale=1'><title>{esc(page.title)}</title><style>{_CSS}</style>"
            f"</head><body><svg width=0 height=0 style='position:absolute'><defs><pattern id=hatch width=6 height=6 "
            f"patternUnits=userSpaceOnUse patternTransform='rotate(45)'><rect width=6 height=6 fill='#e5e7eb'/>"
            f"<line x1=0 y1=0 x2=0 y2=6 stroke='#6b7280' stroke-width=3 /></pattern></defs></svg>"
            f"<header><h1>{esc(page.title)}</h1><p>{esc(page.subtitle)}</p><form class=filters "
            f"onsubmit='return false'>{select('db', 'database', page.databases)}"
            f"{select('tenant', 'tenant', page.tenants)}{select('kind', 'kind', page.kinds)}</form></header>"
            f"<main><div class=tiles>{tiles}</div><div class=grid>{''.join(page.sections)}</div>"
            f"</main><footer>pgtrail · read only from the Data Vault · times in UTC · "
            f"click a column header to sort</footer><script>{_JS}</script></body></html>")


_CSS = """:root{--bar:#2563eb;--ink:#1f2937;--mute:#6b7280;--line:#e5e7eb;--bg:#f5f6f8}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);
background:var(--bg)}header{background:#1e293b;color:#fff;padding:1rem 2rem;display:flex;flex-wrap:wrap;
align-items:baseline;gap:.5rem 2rem}header h1{margin:0;font-size:1.5rem}header p{margin:0;color:#cbd5e1;flex:1}
.filters{display:flex;gap:1rem}.filters select{margin-left:.3rem;padding:.15rem .3rem;border-radius:4px}
main{padding:1.2rem 2rem}.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:.8rem}
.tile{background:#fff;border-radius:8px;padding:.8rem 1rem;border-top:4px solid var(--bar);box-shadow:0 1px 2px #0001}
.tile.alert{border-top-color:#dc2626}.tv{font-size:1.6rem;font-weight:600}.tl{color:var(--mute)}
.tn{color:var(--mute);font-size:.8rem}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem;margin-top:1rem}
.card{background:#fff;border-radius:8px;padding:.8rem 1.2rem 1rem;box-shadow:0 1px 2px #0001;min-width:0}
.card.wide{grid-column:1/-1}h2{font-size:1.1rem;margin:.2rem 0 .3rem}h3{font-size:.95rem;margin:.8rem 0 .2rem}
.note{color:var(--mute);margin:0 0 .5rem;font-size:.85rem}.empty{color:var(--mute);font-style:italic}
svg.chart{display:block}svg.bars{max-width:900px}td.t{white-space:nowrap}
.chart text{font-size:13px;fill:var(--ink)}.chart .axis{fill:var(--mute);font-size:11px}
.chart .grid{stroke:var(--line)}.chart .val{fill:var(--mute)}.chart g.bar:hover rect,.chart rect.seg:hover{opacity:.75}
.legend{display:flex;flex-wrap:wrap;gap:.9rem;font-size:.85rem;margin-top:.2rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.3rem;vertical-align:-1px}
.scroll{overflow:auto;max-height:480px}table{border-collapse:collapse;width:100%;font-size:.82rem}
th,td{padding:.3rem .5rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{position:sticky;top:0;background:#f8fafc;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" ▲"}th[aria-sort=descending]::after{content:" ▼"}
tr:hover td{background:#f8fafc}tr.simulated td{background:repeating-linear-gradient(45deg,#fff,#fff 6px,#f3f4f6 6px,
#f3f4f6 12px);color:var(--mute)}.off{display:none}td.num{text-align:right}
footer{color:var(--mute);font-size:.8rem;padding:0 2rem 1.5rem}
@media (max-width:900px){.grid{grid-template-columns:1fr}}"""

# Sorting (numbers as numbers, data-sort before the text) and filters by data-db/-tenant/-kind: an
# element hides when it names another value than the one chosen; a column's visible segments restack.
# The filters live in the address (report.html#kind=ddl&db=crm), so a filtered view can be linked.
_JS = r"""(function(){
var dims=['db','tenant','kind'];
function val(td){var s=td.getAttribute('data-sort');return s===null?td.textContent.trim():s}
document.querySelectorAll('table.sortable th').forEach(function(th){th.addEventListener('click',function(){
 var i=th.cellIndex,tb=th.closest('table').tBodies[0],asc=th.getAttribute('aria-sort')!=='ascending';
 th.parentNode.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort')});
 th.setAttribute('aria-sort',asc?'ascending':'descending');
 var rows=Array.prototype.slice.call(tb.rows);rows.sort(function(a,b){var x=val(a.cells[i]),y=val(b.cells[i]);
  var nx=parseFloat(x),ny=parseFloat(y),c=(!isNaN(nx)&&!isNaN(ny)&&isFinite(x)&&isFinite(y))?nx-ny:x.localeCompare(y);
  return asc?c:-c});rows.forEach(function(r){tb.appendChild(r)})})});
function apply(){var want={};document.querySelectorAll('select[data-filter]').forEach(function(s){
  want[s.getAttribute('data-filter')]=s.value});
 document.querySelectorAll('[data-db],[data-tenant],[data-kind]').forEach(function(el){if(el.tagName==='OPTION')return;
  var off=dims.some(function(d){var v=el.getAttribute('data-'+d);return want[d]&&v!==null&&v!==want[d]});
  el.classList.toggle('off',off)});
 document.querySelectorAll('svg.stack').forEach(function(svg){var base=+svg.getAttribute('data-base'),
  k=+svg.getAttribute('data-scale');svg.querySelectorAll('g.col').forEach(function(g){var y=base;
  g.querySelectorAll('rect.seg').forEach(function(r){if(r.classList.contains('off'))return;
   var h=+r.getAttribute('data-count')*k;y-=h;r.setAttribute('y',y.toFixed(1))})})})}
var sels=document.querySelectorAll('select[data-filter]');
new URLSearchParams(location.hash.slice(1)).forEach(function(v,k){sels.forEach(function(s){
 if(s.getAttribute('data-filter')===k)s.value=v})});
sels.forEach(function(s){s.addEventListener('change',function(){var h=new URLSearchParams();
 sels.forEach(function(x){if(x.value)h.set(x.getAttribute('data-filter'),x.value)});
 history.replaceState(null,'','#'+h.toString());apply()})});
apply();document.documentElement.setAttribute('data-js','ready');
})();"""


# ------------------------------------------------------------------ the report
@dataclass
class Figures:
    """What reports.html_report read from the vault for the period since `since` (rows as dicts).

    hourly / sensitive: database_name, kind / tag, hour (UTC), n; actors: actor, ddl, dml;
    objects: database_name, object, n; totals: events, actors, sensitive, databases, tenants, kinds;
    dashboard: get_enterprise_dashboard's rows; executions: get_execution_history's; recent:
    pgtrail.history rows."""
    now: datetime
    since: datetime
    days: int
    hourly: list[dict]
    actors: list[dict]
    objects: list[dict]
    sensitive: list[dict]
    totals: dict
    dashboard: list[dict]
    executions: list[dict]
    recent: list[dict]


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def _at(value: Any) -> datetime | None:
    """A time from a dashboard row's jsonb detail (ISO text) or from a column."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _section(dash: list[dict], name: str) -> list[dict]:
    return [r for r in dash if r["section"] == name]


def events_chart(hourly: Sequence[dict], name: str = "events-per-hour") -> tuple[str, str]:
    """(heading, html): one stacked chart per database, columns of hours (or days) by kind."""
    cells = [Cell(_utc(r["hour"]), r["kind"], int(r["n"]), {"db": r["database_name"]}, bool(r.get("simulated")))
             for r in hourly]
    bucket = bucket_for([c.start for c in cells])
    unit = "hour" if bucket == HOUR else "day"
    parts = []
    for db in sorted({c.attrs["db"] or "" for c in cells}):
        mine = rollup([c for c in cells if (c.attrs["db"] or "") == db], bucket)
        parts.append(f'<div class="per-db" data-db="{esc(db)}"><h3>{esc(db or "(unknown database)")}</h3>'
                     f'{stacked_columns(name, mine, bucket)}</div>')
    return f"Events per {unit} by kind", "".join(parts) or stacked_columns(name, [], bucket)


def page(f: Figures) -> str:
    dash = f.dashboard
    failures = _section(dash, "failures")
    untracked = _section(dash, "untracked DDL")
    last = [{"database_name": r["name"], "at": _at((r["detail"] or {}).get("at"))}
            for r in _section(dash, "last activity")]
    latest = max((r["at"] for r in last if r["at"]), default=None)
    n_fail = sum(r["value"] for r in failures)
    n_untracked = sum(r["value"] for r in untracked)
    t = f.totals
    tiles = [
        Tile("events", number(t["events"]), f"last {f.days} days"),
        Tile("databases", number(len(t["databases"]))),
        Tile("people and roles", number(t["actors"]), "who made the changes"),
        Tile("sensitive-data changes", number(t["sensitive"]), "rows with PII/PHI/financial columns"),
        Tile("failures", number(n_fail), "scripts, tracked calls, security", alert=n_fail > 0),
        Tile("untracked DDL", number(n_untracked), "schema changes outside any script", alert=n_untracked > 0),
        Tile("last activity", ago(latest, f.now), when(latest)),
    ]
    heading, events = events_chart(f.hourly)
    actors = [Bar(r["actor"], r["ddl"] + r["dml"], {"actor": r["actor"]},
                  f"{number(r['ddl'] + r['dml'])}  ({r['ddl']} DDL, {r['dml']} DML)", bool(r.get("simulated")))
              for r in f.actors]
    objects = [Bar(r["object"], r["n"], {"db": r["database_name"], "object": r["object"]},
                   simulated=bool(r.get("simulated"))) for r in f.objects]
    sens_cells = [Cell(_utc(r["hour"]), r["tag"], int(r["n"]), {"db": r["database_name"]}, bool(r.get("simulated")))
                  for r in f.sensitive]
    sens_bucket = bucket_for([c.start for c in sens_cells])
    sens_tables = [{"table": r["name"], "n": r["value"], "tags": ", ".join((r["detail"] or {}).get("tags") or [])}
                   for r in _section(dash, "sensitive data changes")]
    slow = [Bar(r["name"], r["value"], {"script": r["name"], "status": (r["detail"] or {}).get("status")},
                duration(r["value"])) for r in _section(dash, "slowest scripts")]
    failed_runs = [r for r in f.executions if r["status"] in ("failed", "abandoned")]
    tenants = [Bar(r["name"], r["value"], {"tenant": r["name"]}) for r in _section(dash, "events by tenant")]
    sections = [
        section_html(heading, "every event in the vault, by its commit time; a filter by kind hides its segments",
                     events),
        section_html("Changes by person", "DDL and DML events by session user", bar_chart("changes-by-actor", actors),
                     wide=False),
        section_html("Changes by table", "the 15 objects changed most (DDL and DML)",
                     bar_chart("changes-by-table", objects), wide=False),
        section_html("Sensitive-data changes over time",
                     f"row changes touching classified columns, per {'hour' if sens_bucket == HOUR else 'day'} "
                     "and compliance tag",
                     stacked_columns("sensitive-changes", rollup(sens_cells, sens_bucket), sens_bucket, "tag",
                                     "no change touched a classified column")
                     + table("sensitive-tables", [Column("table", lambda r: r["table"]),
                                                  Column("changes", lambda r: number(r["n"]), lambda r: r["n"]),
                                                  Column("tags", lambda r: r["tags"])], sens_tables, empty="")),
        section_html("Failures", "failed or abandoned script executions, failed tracked calls, untrusted messages",
                     bar_chart("failures", [Bar(r["name"], r["value"], {"category": r["name"]}) for r in failures])
                     + table("failed-executions", [c for c in _EXECUTION_COLUMNS if c.header in _FAILED_COLUMNS],
                             failed_runs, _filters, empty=""), wide=False),
        section_html("Untracked DDL (drift)", "schema changes made outside any tracked script, by object",
                     bar_chart("untracked-ddl", [Bar(r["name"], r["value"], {"object": r["name"]}) for r in untracked],
                               "no untracked DDL: every schema change came from a tracked script")
                     + table("untracked-ddl", [
                         Column("object", lambda r: r["name"]),
                         Column("changes", lambda r: number(r["value"]), lambda r: r["value"]),
                         Column("last", lambda r: when(_at((r["detail"] or {}).get("last"))),
                                lambda r: (r["detail"] or {}).get("last") or "", cls="t"),
                         Column("by", lambda r: ", ".join(x or "?" for x in (r["detail"] or {}).get("by") or []))],
                         untracked, empty=""), wide=False),
        section_html("Slowest scripts", "the longest script executions in the period",
                     bar_chart("slowest-scripts", slow, "no script execution finished in this period"), wide=False),
        section_html("Events by tenant", "", bar_chart("events-by-tenant", tenants), wide=False),
        section_html("Last activity per database", "the last event ever loaded, not only in this period",
                     table("last-activity", [Column("database", lambda r: r["database_name"]),
                                             Column("last event", lambda r: when(r["at"]), _iso("at"), cls="t"),
                                             Column("", lambda r: ago(r["at"], f.now), _iso("at"))],
                           last, _filters)),
        section_html("Script executions and tracked operations", "newest first; click a header to sort",
                     table("executions", _EXECUTION_COLUMNS, f.executions, _filters)),
        section_html("Recent changes", f"the latest {len(f.recent)} events of the period",
                     table("recent", _RECENT_COLUMNS, list(reversed(f.recent)), _filters)),
    ]
    return render(Page("pgtrail report",
                       f"{when(f.now)} · last {f.days} days (since {when(f.since)}) · read from the Data Vault",
                       tiles, sections, t["databases"], t["tenants"], t["kinds"]))


def _filters(r: dict) -> dict:
    return {"db": r.get("database_name"), "tenant": r.get("tenant_id"), "kind": r.get("kind")}


def _iso(key: str) -> Callable[[dict], str]:
    return lambda r: r[key].isoformat() if r.get(key) else ""


_EXECUTION_COLUMNS = [
    Column("started", lambda r: when(r["started_at"]), _iso("started_at"), cls="t"),
    Column("script", lambda r: r["script_name"], width=50), Column("version", lambda r: r["version"]),
    Column("kind", lambda r: r["kind"]), Column("status", lambda r: r["status"]),
    Column("took", lambda r: duration(r["duration_ms"]), lambda r: r["duration_ms"] if r["duration_ms"] is not None
           else -1, cls="t"),
    Column("rows", lambda r: r["rows_affected"], lambda r: r["rows_affected"] if r["rows_affected"] is not None
           else -1),
    Column("ticket", lambda r: r["ticket_number"]), Column("by", lambda r: r["executed_by"]),
    Column("tenant", lambda r: r["tenant_id"]), Column("database", lambda r: r["database_name"]),
    Column("error", lambda r: r["error"], width=80),
]


_FAILED_COLUMNS = {"started", "script", "status", "took", "by", "error"}


def _recent_detail(r: dict) -> str:
    return dict(history.COLUMNS)["detail"](r)


_RECENT_COLUMNS = [
    Column("time", lambda r: when(r["commit_time"]), _iso("commit_time"), cls="t"),
    Column("database", lambda r: r["database_name"]), Column("kind", lambda r: r["kind"]),
    Column("action", lambda r: r["action"]), Column("object", lambda r: r["object_identity"], width=50),
    Column("who", lambda r: r["session_user_name"]), Column("app", lambda r: r["application_name"], width=30),
    Column("tenant", lambda r: r["tenant_id"]), Column("tags", lambda r: ", ".join(r["tags"] or [])),
    Column("ticket", lambda r: r["ticket_number"]), Column("detail", _recent_detail, width=100),
]
