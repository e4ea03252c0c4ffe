from __future__ import annotations

import logging
import sys
from pathlib import Path

from codexbro.logs import LOG_BACKUPS, MAX_LOG_BYTES, RotatingOnFirstRecord, setup_file_logging


def test_logs_rotate_and_stay_bounded(tmp_path: Path) -> None:
    root = logging.getLogger("codexbro")
    saved = list(root.handlers)
    try:
        setup_file_logging(tmp_path)
        lazy = next(h for h in root.handlers if isinstance(h, RotatingOnFirstRecord))
        assert not (tmp_path / "log").exists()  # nothing logged yet: no file, no directory
        handler = lazy.open()
        assert (
            handler is not None and handler.maxBytes == MAX_LOG_BYTES and handler.backupCount == LOG_BACKUPS
        )
        handler.maxBytes = 2000  # make rotation observable in a test
        for i in range(500):
            logging.getLogger("codexbro.test").warning("line %d %s", i, "x" * 40)
        files = sorted((tmp_path / "log").iterdir())
        assert [f.name for f in files] == [
            "codexbro.log",
            "codexbro.log.1",
            "codexbro.log.2",
            "codexbro.log.3",
        ]
        assert sum(f.stat().st_size for f in files) <= 4 * 2100
    finally:
        for h in root.handlers:
            if h not in saved:
                h.close()
        root.handlers = saved


def test_a_home_where_the_log_cannot_be_written_drops_records_quietly(tmp_path: Path) -> None:
    (tmp_path / "log").write_text("a file where the log directory should be")
    handler = RotatingOnFirstRecord(tmp_path / "log" / "codexbro.log")
    record = logging.LogRecord("codexbro.t", logging.WARNING, __file__, 1, "lost", None, None)
    handler.handle(record)
    handler.handle(record)  # asked once: a failed open is remembered
    assert handler.file is None and handler._failed
    handler.close()


def test_a_run_that_logs_nothing_never_imports_the_rotating_handler(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys, logging; from pathlib import Path; from codexbro.logs import setup_file_logging; "
        f"setup_file_logging(Path({str(tmp_path)!r})); logging.getLogger('codexbro.x').debug('below INFO'); "
        "print('logging.handlers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False" and not (tmp_path / "log").exists()
