"""File logging under ``$CODEXBRO_HOME/log``: rotated, so state on disk stays bounded."""

from __future__ import annotations

import logging
import os
from pathlib import Path

MAX_LOG_BYTES = 5 * 1024 * 1024
LOG_BACKUPS = 3


def setup_file_logging(home: Path) -> None:
    """Log to ``log/codexbro.log`` (5 MiB × 4 files at most). Level from ``CODEXBRO_LOG``."""
    from logging.handlers import RotatingFileHandler

    root = logging.getLogger("codexbro")
    if any(isinstance(h, RotatingFileHandler) for h in root.handlers):
        return
    log_dir = home / "log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(
            log_dir / "codexbro.log", maxBytes=MAX_LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
    except OSError:
        return  # a read-only home must not stop the agent
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
