"""Every type a tracked table can hold decodes to a faithful event (through the real slot)."""
import json
from decimal import Decimal

from schemas import DmlEvent


def test_types_decode_faithfully_and_unchanged_toast_is_marked(src, capture):
    src.execute("create type mood as enum ('sad', 'ok', 'happy')")
    src.execute("create domain positive as integer check (value > 0)")
    src.execute("""create table every_type (
        id int primary key, n numeric(30,10), n_nan numeric, f8 float8, m money, b bytea, arr int[],
        txt_arr text[], j json, jb jsonb, r int4range, tr tstzrange, e mood, d positive, p point, bx box,
        ts timestamp, tz timestamptz, dt date, tm time, iv interval, u uuid, inet_c inet, bits bit(4),
        big text, flag boolean)""")
    src.execute("alter table every_type alter column big set storage external")  # out of line, uncompressed
    src.execute("select script_tracking.track_table('every_type')")
    src.execute("set timezone = 'Asia/Kolkata'")
    src.execute("""insert into every_type values (1, 12345678901234567890.0123456789, 'NaN', 1.5e300, 12.34,
        '\\x00ff10', '{1,2,3}', '{"a b","c,d",null}', '{"k": [1, 2]}', '{"z": 1, "a": {"b": null}}',
        '[1,10)', '[2026-01-01 00:00+00,2026-02-01 00:00+00)', 'happy', 7, '(1.5,2)', '((0,0),(1,1))',
        '2026-11-25 10:00:00.123456', '2026-11-25 10:00:00+05:30', '2026-11-25', '23:59:59', '1 day 2 hours',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '192.168.0.1/24', B'1010', repeat('x', 100000), true)""")
    src.execute("update every_type set flag = false where id = 1")  # big is TOASTed and unchanged
    src.execute("update every_type set big = 'short now' where id = 1")
    dml = [e for e in capture.read() if isinstance(e, DmlEvent)]
    assert [d.payload.operation for d in dml] == ["insert", "update", "update"]
    # the stream carries no column type names (include-types=0): values are typed by wal2json alone
    rows = [json.loads(line) for line in capture.lines if b'"table":"every_type"' in line]
    assert len(rows) == 3 and all("type" not in c for r in rows for c in r["columns"] + r.get("pk", []))
    row = dml[0].payload.new
    assert Decimal(row["n"]) == Decimal("12345678901234567890.0123456789")  # no float rounding
    assert row["n_nan"] == "NaN"  # wal2json 2.5 sends null; the source's trigger gives the exact value
    assert float(row["f8"]) == 1.5e300
    assert row["m"] == "$12.34"
    assert row["b"] == "00ff10"  # bytea as hex
    assert row["arr"] == "{1,2,3}" and row["txt_arr"] == '{"a b","c,d",NULL}'
    assert row["j"] == '{"k": [1, 2]}' and row["jb"] == '{"a": {"b": null}, "z": 1}'
    assert row["r"] == "[1,10)" and row["tr"] == '["2026-01-01 00:00:00+00","2026-02-01 00:00:00+00")'
    assert row["e"] == "happy" and row["d"] == "7"  # a domain arrives as its text
    assert row["p"] == "(1.5,2)" and row["bx"] == "(1,1),(0,0)"
    assert row["ts"] == "2026-11-25 10:00:00.123456"
    assert row["tz"] == "2026-11-25 04:30:00+00"  # one instant, in the decoding session's zone (UTC)
    assert row["dt"] == "2026-11-25" and row["tm"] == "23:59:59" and row["iv"] == "1 day 02:00:00"
    assert row["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" and row["inet_c"] == "192.168.0.1/24"
    assert row["bits"] == "1010" and row["flag"] is True
    assert len(row["big"]) == 100000
    unchanged = dml[1].payload
    assert "big" not in unchanged.new and unchanged.unchanged_toast == ["big"]  # unchanged, never null
    assert unchanged.new["flag"] is False
    changed = dml[2].payload
    assert changed.new["big"] == "short now" and changed.unchanged_toast == []


def test_nan_and_infinity_are_told_from_null(src, capture):
    """wal2json 2.5 writes NaN, Infinity and -Infinity of numeric, double precision and real as
    null, like NULL; the tracked table's special-numbers trigger reports the exact values, also
    for a numeric column added later. Old values (REPLICA IDENTITY FULL) are not restored: they
    stay null, as documented."""
    src.execute("create table m (id int primary key, n numeric, f float8 not null, r real, note text)")
    src.execute("select script_tracking.track_table('m')")
    src.execute("""insert into m values (1, 'NaN', 'Infinity', '-Infinity', 'specials'),
                                        (2, null, 1.5, null, 'nulls'),
                                        (3, 'Infinity', '-Infinity', 'NaN', 'specials')""")
    src.execute("update m set n = '-Infinity', note = 'updated' where id = 2")
    src.execute("alter table m add column later numeric")
    src.execute("insert into m (id, f, later) values (4, 0, 'NaN')")
    src.execute("update m set n = 2 where id = 4")  # no special value: the trigger does not fire
    rows = [(e.payload.operation, e.payload.new) for e in capture.read() if isinstance(e, DmlEvent)]
    assert [(op, new["id"]) for op, new in rows] == [("insert", 1), ("insert", 2), ("insert", 3), ("update", 2),
                                                     ("insert", 4), ("update", 4)]
    assert {k: rows[0][1][k] for k in ("n", "f", "r")} == {"n": "NaN", "f": "Infinity", "r": "-Infinity"}
    assert {k: rows[1][1][k] for k in ("n", "r")} == {"n": None, "r": None}  # real NULLs stay null
    assert {k: rows[2][1][k] for k in ("n", "f", "r")} == {"n": "Infinity", "f": "-Infinity", "r": "NaN"}
    assert rows[3][1]["n"] == "-Infinity" and rows[3][1]["r"] is None
    assert rows[4][1]["later"] == "NaN" and rows[4][1]["n"] is None
    assert rows[5][1]["n"] == 2 and rows[5][1]["later"] == "NaN"  # an UPDATE sends every column: the trigger too
