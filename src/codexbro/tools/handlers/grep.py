"""``grep_files``: files whose contents match a regex, newest first, via ripgrep.

``rg`` comes from the ``ripgrep`` PyPI wheel installed with codexbro (no system rg assumed); a
system ``rg`` on PATH is the fallback. When neither exists the tool is left off the menu.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from functools import cache
from pathlib import Path

from codexbro.tools.base import FunctionTool, RespondToModel, ToolCall, ToolContext, ToolOutput, function_spec
from codexbro.tools.spawn import run_process

DEFAULT_LIMIT = 100
MAX_LIMIT = 2000
TIMEOUT_S = 30.0

GREP_FILES = function_spec(
    "grep_files",
    "Finds files whose contents match a regular expression and lists their paths, most recently "
    "modified first.",
    {
        "pattern": {"type": "string", "description": "Regular expression (ripgrep syntax)."},
        "include": {"type": "string", "description": 'Glob of files to search, e.g. "*.py" or "*.{ts,tsx}".'},
        "path": {
            "type": "string",
            "description": "File or directory to search (default: the working directory).",
        },
        "limit": {"type": "number", "description": "Maximum paths to return (default 100, at most 2000)."},
    },
    ["pattern"],
)


@cache
def find_rg() -> str | None:
    for scripts in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(scripts) / "rg"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("rg")


class GrepFilesHandler(FunctionTool):
    name = "grep_files"
    SPEC = GREP_FILES

    async def handle(self, call: ToolCall, ctx: ToolContext) -> ToolOutput:
        args = self.args(call)
        pattern = args["pattern"].strip()
        if not pattern:
            raise RespondToModel("pattern must not be empty")
        limit = args.get("limit")
        if limit is None:
            limit = DEFAULT_LIMIT
        if not isinstance(limit, int | float) or isinstance(limit, bool) or limit <= 0:
            raise RespondToModel("limit must be greater than zero")
        limit = min(int(limit), MAX_LIMIT)
        target = ctx.resolve_path(args.get("path"))
        if not target.exists():
            raise RespondToModel(f"unable to access `{target}`: No such file or directory (os error 2)")
        rg = find_rg()
        if rg is None:
            raise RespondToModel("failed to launch rg: not found. Ensure ripgrep is installed and on PATH.")
        argv = [rg, "--files-with-matches", "--sortr=modified", "--regexp", pattern, "--no-messages"]
        if args.get("include"):
            argv += ["--glob", args["include"]]
        argv += ["--", str(target)]
        from codexbro.tools.exec_gate import sandbox_for

        try:
            # rg reads on the model's behalf: in restricted modes it runs inside the sandbox, which
            # hides what commands may not see (the agent's home, its process, other processes).
            result = await run_process(argv, cwd=ctx.cwd, env={"PATH": "/usr/bin:/bin"}, timeout_s=TIMEOUT_S,
                                       sandbox=await sandbox_for(ctx, True))  # fmt: skip
        except OSError as exc:
            raise RespondToModel(
                f"failed to launch rg: {exc}. Ensure ripgrep is installed and on PATH."
            ) from None
        if result.timed_out:
            raise RespondToModel("rg timed out after 30 seconds")
        if result.exit_code == 1:
            return ToolOutput("No matches found.", success=False)
        if result.exit_code != 0:
            raise RespondToModel(f"rg failed: {result.stderr.decode('utf-8', 'replace').strip()}")
        paths = result.stdout.decode("utf-8", "replace").splitlines()[:limit]
        return ToolOutput("\n".join(paths))
