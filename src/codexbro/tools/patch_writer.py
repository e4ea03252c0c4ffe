"""Where a verified, approved patch is written.

- **Inside the sandbox** (``read-only`` / ``workspace-write``, unless the user approved this very
  patch): the kernel resolves every path in the sandbox's view, so symlinks, hard links, ``..`` and
  races cannot carry a write outside the writable roots or into a protected path. With the
  ``namespaces`` and ``landlock`` backends the agent forks, the child enters the sandbox (user and
  mount namespaces, or Landlock) and writes the patch with the code it already has loaded — no exec,
  a few milliseconds. With ``bubblewrap`` the worker (``codexbro.apply_patch.worker``) is run under
  ``bwrap`` like any command.
- **In the agent's process** under ``danger-full-access``, or for a patch the user approved: the
  policy's own rules apply. Writes are atomic and never carried through a hard link.

Either way the patch is verified again right before writing and nothing is written unless all of
it applies.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codexbro.sandbox.linux import Prepared


@dataclass(frozen=True)
class Written:
    ok: bool
    text: str  # the summary, or the error message
    errno: int | None = None
    reason: str = ""


def write_here(patch: str, cwd: Path) -> Written:
    from codexbro.apply_patch.apply import commit, verify
    from codexbro.apply_patch.parser import PatchError, parse_patch

    try:
        return Written(True, commit(verify(parse_patch(patch), cwd), cwd).summary())
    except PatchError as exc:
        return Written(False, str(exc), exc.errno, exc.reason)


def _to_json(result: Written) -> bytes:
    return json.dumps(
        {"ok": result.ok, "text": result.text, "errno": result.errno, "reason": result.reason}
    ).encode()


def _from_json(data: bytes, stderr: bytes, code: int | None) -> Written:
    try:
        raw: dict[str, Any] = json.loads(data)
        if "summary" in raw:  # the worker's answer
            return Written(True, str(raw["summary"]))
        return Written(bool(raw["ok"]), str(raw.get("text") or raw.get("error") or ""), raw.get("errno"),
                       str(raw.get("reason") or ""))  # fmt: skip
    except (ValueError, KeyError, TypeError):
        detail = stderr.decode("utf-8", "replace").strip().splitlines()
        why = detail[-1] if detail else f"exit status {code}"
        return Written(False, f"apply_patch could not run in the sandbox: {why}")


async def write_in_sandbox(patch: str, cwd: Path, prepared: Prepared) -> Written:
    from codexbro.tools.spawn import finish_process, start_process

    try:
        if prepared.isolate is not None:
            isolate = prepared.isolate
            if prepared.container is not None:
                await prepared.container.start()
            # Load everything the child will need before forking: it must not import.
            import codexbro.apply_patch.apply  # noqa: F401

            def child() -> None:
                try:
                    isolate(str(cwd))
                    result = write_here(patch, cwd)
                except OSError as exc:
                    result = Written(False, f"apply_patch could not enter the sandbox: {exc}")
                os.write(1, _to_json(result))
                os._exit(0)

            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-c", "raise SystemExit(3)", stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, preexec_fn=child,
                    start_new_session=True, cwd=str(cwd),
                )  # fmt: skip
            except OSError as exc:
                return Written(False, f"apply_patch could not start in {cwd}: {exc.strerror or exc}")
            prepared.started()
            out, err = await proc.communicate()
            return _from_json(out, err, proc.returncode)
        argv = [sys.executable, "-I", "-m", "codexbro.apply_patch.worker"]
        worker = await start_process(
            argv, cwd=cwd, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, sandbox=prepared,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await worker.communicate(json.dumps({"patch": patch}).encode())
        finally:
            if worker.returncode is not None:
                finish_process(worker, None)
        return _from_json(out, err, worker.returncode)
    finally:
        prepared.release()
