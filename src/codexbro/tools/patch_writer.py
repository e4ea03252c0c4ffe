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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:
    from codexbro.apply_patch.apply import PlannedChange
    from codexbro.sandbox.linux import Prepared


class Written(Struct, frozen=True):
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


def write_approved(plan: list[PlannedChange], cwd: Path, resolved: dict[str, Path]) -> Written:
    """A patch the user approved for paths outside the sandbox: the verified contents (not read
    again) written to ``resolved`` — each path as it resolved when the user approved it — following
    no link on the way, so a link swapped in since makes the write fail rather than move it."""
    from codexbro.apply_patch import nofollow
    from codexbro.apply_patch.apply import Affected, umask

    affected = Affected()
    new_mode = 0o666 & ~umask()
    for change in plan:
        target = resolved[str(change.abs_path)]
        try:
            if change.kind == "add":
                nofollow.write_file(target, change.new_text or "", new_mode)
                affected.added.append(change.path)
            elif change.kind == "delete":
                nofollow.unlink(target)
                affected.deleted.append(change.path)
            else:
                if change.move_to:
                    nofollow.write_file(resolved[str(cwd / change.move_to)], change.new_text or "", new_mode)
                    nofollow.unlink(target)
                else:
                    nofollow.write_file(target, change.new_text or "", new_mode)
                affected.modified.append(change.move_to or change.path)
        except OSError as exc:
            return Written(False, f"Failed to write file {change.abs_path}", exc.errno,
                           f"{exc.strerror or exc} (os error {exc.errno})")  # fmt: skip
    return Written(True, affected.summary())


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
