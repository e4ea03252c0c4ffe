"""File logging under ``$CODEXBRO_HOME/log``: rotated, so state on disk stays bounded."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from logging.handlers import RotatingFileHandler

MAX_LOG_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


class RotatingOnFirstRecord(logging.Handler):
    """A ``RotatingFileHandler`` made when the first record arrives: most runs log nothing, and
    then neither ``logging.handlers`` is imported nor the file opened. A file that cannot be
    opened (a read-only home) drops the records — it must not stop the agent."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.file: RotatingFileHandler | None = None
        self._failed = False

    def open(self) -> RotatingFileHandler | None:
        if self.file is None and not self._failed:
            from logging.handlers import RotatingFileHandler

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.file = RotatingFileHandler(self.path, maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS,
                                                encoding="utf-8")  # fmt: skip
            except OSError:
                self._failed = True
                return None
            self.file.setFormatter(self.formatter)
        return self.file

    def emit(self, record: logging.LogRecord) -> None:  # called under this handler's lock
        file = self.open()
        if file is not None:
            file.emit(record)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


def setup_file_logging(home: Path) -> None:
    """Log to ``log/codexbro.log`` (5 MiB × 4 files at most). Level from ``CODEXBRO_LOG``."""
    root = logging.getLogger("codexbro")
    if any(isinstance(h, RotatingOnFirstRecord) for h in root.handlers):
        return
    handler = RotatingOnFirstRecord(home / "log" / "codexbro.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    level = os.environ.get("CODEXBRO_LOG", "INFO").strip().upper() or "INFO"
    if level not in LEVELS:
        import sys

        print(f"codexbro: CODEXBRO_LOG={os.environ['CODEXBRO_LOG']!r} is not a log level "
              f"({', '.join(LEVELS)}); logging at INFO", file=sys.stderr)  # fmt: skip
        level = "INFO"
    root.setLevel(level)
    root.propagate = False


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
