"""Commands a tool process can call that are codexbro's own: ``apply_patch`` and ``applypatch``.

As upstream, the model may run ``apply_patch`` as a command — a heredoc inside a longer script, or
``apply_patch "<patch>"`` — and it must work in every shell tool, without codexbro putting anything
on the user's own PATH. The helpers live in the package (``tools/bin``); every spawned command gets
that directory first on its PATH, and a login shell — whose profile may reset PATH (Debian's
``/etc/profile`` does) — gets it put back in front of the script (a restored shell snapshot, which
may set PATH too, puts ``CODEXBRO_PATH_FRONT`` back in front itself). ``CODEXBRO_PYTHON`` tells the
helper which interpreter has codexbro.
"""

from __future__ import annotations

import os
import stat
import sys
from functools import cache
from pathlib import Path

HELPER_DIR = Path(__file__).parent / "bin"
POSIX_SHELLS = ("bash", "sh", "zsh", "dash", "ksh", "mksh")


@cache
def helper_dir() -> str | None:
    """The directory, once its scripts are executable (a wheel may drop the bits); None if not."""
    ok = True
    for script in HELPER_DIR.iterdir():
        mode = script.stat().st_mode
        if not mode & stat.S_IXUSR:
            try:
                script.chmod(mode | 0o755)
            except OSError:
                ok = False
    return str(HELPER_DIR) if ok else None


def with_helpers(argv: list[str], env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    directory = helper_dir()
    if directory is None:
        return argv, env
    env = {
        **env, "PATH": f"{directory}:{env.get('PATH', os.defpath)}", "CODEXBRO_PYTHON": sys.executable,
        "CODEXBRO_PATH_FRONT": directory,  # a restored shell snapshot puts it back in front of PATH
    }  # fmt: skip
    if len(argv) == 3 and argv[1] in ("-lc", "-l -c") and os.path.basename(argv[0]) in POSIX_SHELLS:
        argv = [argv[0], argv[1], f'PATH="{directory}:$PATH"; export PATH\n{argv[2]}']
    return argv, env
