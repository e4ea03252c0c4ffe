"""The console script leaves with ``os._exit`` once ``main`` has returned (issue 19: tearing the
interpreter down took ~30 ms of a one-message turn) — and loses nothing an ordinary exit keeps:
buffered output, ``atexit`` handlers, the exit code, threads still at work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _run_entry(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys, atexit, threading, time\n"
        "from pathlib import Path\n"
        "import codexbro.cli.main as m\n"
        f"OUT = Path({str(tmp_path)!r})\n"
        "def fake():\n"
        + "".join(f"    {line}\n" for line in body.splitlines())
        + "m.main = fake\nm.entry()\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_output_atexit_handlers_and_the_code_survive_the_quick_exit(tmp_path: Path) -> None:
    proc = _run_entry(
        "atexit.register(lambda: (OUT / 'atexit').write_text('ran'))\n"
        "sys.stdout.write('buffered, no newline')\n"
        "sys.stderr.write('err text')\n"
        "return 3",
        tmp_path,
    )
    assert proc.returncode == 3
    assert proc.stdout == "buffered, no newline" and proc.stderr == "err text"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_thread_still_at_work_is_waited_for(tmp_path: Path) -> None:
    proc = _run_entry(
        "def late():\n"
        "    time.sleep(0.3)\n"
        "    (OUT / 'thread').write_text('done')\n"
        "threading.Thread(target=late).start()\n"
        "return 0",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread").read_text() == "done"


def test_a_closed_stdout_is_reported_as_python_would(tmp_path: Path) -> None:
    """stdout closed under us: the flush fails and the ordinary exit path reports it (no hang, no
    silent success)."""
    code = (
        "import sys, os\nimport codexbro.cli.main as m\n"
        "def fake():\n    sys.stdout.write('x' * 100000)\n    return 0\n"
        "m.main = fake\nm.entry()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader went away
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(30) != 0, err
