"""Historical import from PostgreSQL server logs: stderr (any log_line_prefix), csvlog and
jsonlog, plain or gzip, read as a stream into log-import events (schemas.events.LogImportEvent).

    report = ParseReport()
    for event in read_log("postgresql.log.gz", origin="postgresql.log.gz", server=system_id, report=report):
        ...
    print(report.summary())
"""
from logimport.entries import EntryBuilder
from logimport.formats import Record
from logimport.prefix import COMMON_PREFIXES, Prefix
from logimport.reader import LogFormatError, ParseReport, detect_format, detect_prefix, read_log
from logimport.sqlclass import Classification, classify

__all__ = ["read_log", "ParseReport", "LogFormatError", "detect_format", "detect_prefix", "classify",
           "Classification", "Prefix", "COMMON_PREFIXES", "EntryBuilder", "Record"]
