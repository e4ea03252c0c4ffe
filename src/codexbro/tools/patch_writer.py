"""Where a verified, approved patch is written.

- **Inside the sandbox** (``read-only`` / ``workspace-write``, unless the user approved writing
  outside the roots): the kernel resolves every path in the sandbox's view, so symlinks, hard links,
  ``..`` and races cannot carry a write outside the writable roots or into a protected path. With
  ``namespaces`` the container's spawn server forks the writer (restricted like a command); with
  ``landlock`` a forked child of the agent takes the ruleset and writes with the code already loaded;
  with ``bubblewrap`` the worker (``codexbro.apply_patch.worker``) runs under ``bwrap`` like any
  command.
- **In the agent's process** under ``danger-full-access``, or for a patch the user approved: the
  policy's own rules apply. Writes are atomic and never carried through a hard link.

Either way the patch is verified again right before writing and nothing is written unless all of
it applies.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        if not _is_dir(cwd):
            return Written(False, f"apply_patch: the directory {cwd} does not exist")
        if prepared.container is not None:  # the container's server forks the writer
            proc = await prepared.container.spawn(
                ["apply_patch"], cwd=str(cwd), env={}, tty=False, stdin=None, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, patch=patch,
            )  # fmt: skip
            out, err = await asyncio.wait_for(proc.communicate(), WRITER_TIMEOUT_S)
            return _from_json(out, err, proc.returncode)
        if prepared.isolate is not None:  # landlock: a forked child of the agent takes the ruleset
            return await _write_forked(patch, cwd, prepared)
        argv = [sys.executable, "-I", "-m", "codexbro.apply_patch.worker"]
        worker = await start_process(
            argv, cwd=cwd, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, sandbox=prepared,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(
                worker.communicate(json.dumps({"patch": patch}).encode()), WRITER_TIMEOUT_S
            )
        finally:
            if worker.returncode is not None:
                finish_process(worker, None)
        return _from_json(out, err, worker.returncode)
    except TimeoutError:
        return Written(
            False, f"apply_patch: the sandboxed writer did not finish within {WRITER_TIMEOUT_S:.0f} s"
        )
    finally:
        prepared.release()


WRITER_TIMEOUT_S = 60.0


def _is_dir(path: Path) -> bool:
    return os.path.isdir(path)


async def _write_forked(patch: str, cwd: Path, prepared: Prepared) -> Written:
    isolate = prepared.isolate
    assert isolate is not None
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
    try:
        out, err = await asyncio.wait_for(proc.communicate(), WRITER_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return _from_json(out, err, proc.returncode)
