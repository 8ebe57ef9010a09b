"""Sanitizer reports in servers' stderr. scripts/test.sh runs the suite
against the ASan+UBSan build too; a worker that hits a report aborts and is
respawned, and the test might pass anyway, so conftest reads every server's
stderr after each test and fails the test on a report.

The registry lives here, not in conftest.py, because conftest.py may be
loaded twice (test_conformance.py loads it by path)."""

MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
servers = []  # every Server made, until its stderr has been read after a stop


def scan(srv):
    """Reads srv's stderr from where the last scan stopped; keeps any report
    in srv.sanitizer_reports."""
    path = srv.log_path + ".stderr"
    try:
        with open(path, errors="replace") as f:
            f.seek(srv._san_offset)
            text = f.read()
            srv._san_offset = f.tell()
    except OSError:
        return
    if any(m in text for m in MARKS):
        srv.sanitizer_reports.append(f"{path}:\n{text[-8000:]}")


def collect():
    """Reads every registered server; returns the reports not yet returned
    and forgets servers that have stopped."""
    reports = []
    for srv in list(servers):
        scan(srv)
        reports += srv.sanitizer_reports
        srv.sanitizer_reports = []
        if srv.proc is None or srv.proc.poll() is not None:
            servers.remove(srv)
    return reports
