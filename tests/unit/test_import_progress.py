"""The progress line of `pgtrail import-logs`: only on a terminal, share of the input done."""
import io

from logimport import ParseReport
from pgtrail.importlogs import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_share_lines_entries_and_problems_on_a_terminal():
    out = Terminal()
    report = ParseReport(lines=1200, entries=900, unparsed=3, source_bytes_read=500)
    progress = Progress("/var/log/pg.log", total=1000, out=out)
    progress.update(report, final=True)
    line = out.getvalue()
    assert line.startswith("\rpg.log:  50.0% [###############               ]")
    assert "1200 lines, 900 entries, 3 not parsed" in line and line.endswith("\n")


def test_no_progress_when_not_on_a_terminal():
    out = io.StringIO()
    Progress("x.log", total=10, out=out).update(ParseReport(lines=5), final=True)
    assert out.getvalue() == ""
