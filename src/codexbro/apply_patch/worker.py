"""Apply a patch inside the sandbox: ``python -I -m codexbro.apply_patch.worker`` with the patch as
JSON on stdin, the patch's directory as the working directory, and a JSON answer on stdout.

The agent verifies and approves a patch in its own process, then — under ``read-only`` and
``workspace-write`` — hands the writing to this worker, spawned inside the same sandbox as any
command (upstream runs ``codex --codex-run-as-apply-patch`` the same way). Every path is then
resolved by the kernel inside the sandbox's view, so no symlink, hard link, ``..`` or race can carry
a write outside the writable roots or into a protected path: the write fails with EROFS instead.
The worker verifies again (the files may have changed since) and writes nothing unless the whole
patch applies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> int:
    from codexbro.apply_patch.apply import commit, verify
    from codexbro.apply_patch.parser import PatchError, parse_patch

    try:
        request = json.loads(sys.stdin.read())
        patch = str(request["patch"])
    except (ValueError, KeyError, TypeError) as exc:
        print(json.dumps({"ok": False, "error": f"bad worker request: {exc}"}))
        return 2
    cwd = Path.cwd()
    try:
        affected = commit(verify(parse_patch(patch), cwd), cwd)
    except PatchError as exc:
        print(json.dumps({"ok": False, "error": str(exc), "errno": exc.errno, "reason": exc.reason}))
        return 1
    print(json.dumps({"ok": True, "summary": affected.summary()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
