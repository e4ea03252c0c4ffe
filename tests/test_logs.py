from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from codexbro.logs import LOG_BACKUPS, MAX_LOG_BYTES, setup_file_logging


def test_logs_rotate_and_stay_bounded(tmp_path: Path) -> None:
    root = logging.getLogger("codexbro")
    saved = list(root.handlers)
    try:
        setup_file_logging(tmp_path)
        handler = next(h for h in root.handlers if isinstance(h, RotatingFileHandler))
        assert handler.maxBytes == MAX_LOG_BYTES and handler.backupCount == LOG_BACKUPS
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
