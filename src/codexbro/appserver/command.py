"""``command/exec`` (run one argv in the server's sandbox, no thread or turn), ``review/start`` (a
review turn on a thread) and ``account/login/start`` (an API key, or a ChatGPT browser login whose
URL the client opens), as upstream 0.169's app server offers them."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

from codexbro.appserver.params import require
from codexbro.appserver.rpc import INVALID_REQUEST, RpcError, invalid_params
from codexbro.config.loader import Overrides
from codexbro.config.values import SandboxMode

DEFAULT_TIMEOUT_S = 10.0  # upstream's default for command/exec
SANDBOX_KINDS: dict[str, SandboxMode] = {
    "dangerFullAccess": "danger-full-access",
    "readOnly": "read-only",
    "workspaceWrite": "workspace-write",
}


async def command_exec(base: Overrides, home: Path, owner: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run ``command`` under the config's sandbox policy (or ``sandboxPolicy``), buffered."""
    from codexbro.config.loader import load_config
    from codexbro.sandbox.policy import spec_for
    from codexbro.tools.base import RespondToModel, ToolContext
    from codexbro.tools.exec_env import build_env
    from codexbro.tools.exec_gate import sandbox_for
    from codexbro.tools.spawn import run_process

    argv = require(params, "command", list)
    if not argv or not all(isinstance(a, str) and a for a in argv):
        raise invalid_params("`command` must be a non-empty array of non-empty strings")
    cwd = params.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not await asyncio.to_thread(Path(cwd).is_dir)):
        raise invalid_params(f"`cwd` {cwd!r} is not a directory")
    config = load_config(
        Overrides(base.cli_overrides, base.profile, dict(base.flags), Path(cwd) if cwd else base.cwd)
    )
    mode: SandboxMode = config.sandbox_mode
    policy = params.get("sandboxPolicy")
    if policy is not None:
        if not isinstance(policy, dict) or policy.get("type") not in SANDBOX_KINDS:
            raise invalid_params("`sandboxPolicy.type` must be dangerFullAccess, readOnly or workspaceWrite")
        mode = SANDBOX_KINDS[policy["type"]]
    from codexbro.composition import managed
    from codexbro.config.requirements import refusal

    # a ChatGPT workspace's managed requirements hold a command run here too
    _held, reqs, _warnings = await asyncio.to_thread(managed.apply, config)
    if (why := refusal("sandbox_mode", mode, reqs)) is not None:
        raise invalid_params(why.replace("; the setting is unchanged", ""))
    timeout_ms = params.get("timeoutMs")
    if timeout_ms is not None and (
        not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or timeout_ms <= 0
    ):
        raise invalid_params("`timeoutMs` must be a positive integer")
    timeout = (
        None if params.get("disableTimeout") else (timeout_ms / 1000 if timeout_ms else DEFAULT_TIMEOUT_S)
    )
    spec = spec_for(mode, config.sandbox_workspace_write, config.cwd, config.codexbro_home, owner)
    ctx = ToolContext(cwd=config.cwd, turn_id="", sandbox_mode=mode, approval_policy="never",
                      sandbox_workspace_write=config.sandbox_workspace_write,
                      env_policy=config.shell_environment_policy, sandbox=spec, sandbox_backend=config.sandbox_backend,
                      home=config.codexbro_home)  # fmt: skip
    try:
        prepared = await sandbox_for(ctx, spec is not None)
        result = await run_process([str(a) for a in argv], cwd=config.cwd, env=build_env(config.shell_environment_policy),
                                   timeout_s=timeout, sandbox=prepared)  # fmt: skip
    except RespondToModel as exc:
        raise RpcError(INVALID_REQUEST, str(exc)) from None
    except OSError as exc:
        raise RpcError(INVALID_REQUEST, f"could not start {argv[0]}: {exc.strerror or exc}") from None
    return {"exitCode": result.exit_code, "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace")}  # fmt: skip


def review_prompt(target: Any) -> tuple[str, str]:
    """(the prompt, a short label) for a ``ReviewTarget``."""
    if not isinstance(target, dict):
        raise invalid_params("`target` must be a review target object")
    kind = target.get("type")
    intro = ("Review the code changes below as a careful senior engineer: report bugs, risky changes and "
             "missing tests, each with the file and line, most important first. Do not make changes.\n\n")  # fmt: skip
    if kind == "uncommittedChanges":
        return (
            intro
            + "The changes: the working tree's staged, unstaged and untracked files (use git diff, git status).",
            "current changes",
        )
    if kind == "baseBranch" and isinstance(target.get("branch"), str):
        branch = target["branch"]
        return (
            intro + f"The changes: this branch against `{branch}` (git diff {branch}...HEAD).",
            f"changes against {branch}",
        )
    if kind == "commit" and isinstance(target.get("sha"), str):
        sha = target["sha"]
        return intro + f"The changes: commit {sha} (git show {sha}).", str(
            target.get("title") or f"commit {sha[:7]}"
        )
    if kind == "custom" and isinstance(target.get("instructions"), str):
        return target["instructions"], "custom review"
    raise invalid_params(
        "`target.type` must be uncommittedChanges, baseBranch {branch}, commit {sha} or custom {instructions}"
    )


class Logins:
    """ChatGPT browser logins started by ``account/login/start`` (one at a time), cancellable."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Task[None]] = {}

    async def start(self, home: Path, params: dict[str, Any], notify: Any) -> dict[str, Any]:
        kind = params.get("type")
        if kind == "apiKey":
            from codexbro.auth import storage

            key = require(params, "apiKey", str).strip()
            if not key:
                raise invalid_params("`apiKey` is empty")
            storage.save(home, storage.AuthFile(auth_mode="apikey", api_key=key))
            await notify("account/login/completed", {"loginId": None, "success": True, "error": None})
            await notify("account/updated", {"authMode": "apikey", "planType": None})
            return {"type": "apiKey"}
        if kind != "chatgpt":
            raise invalid_params(
                "`type` must be apiKey or chatgpt (device-code login: `codexbro login --device-auth`)"
            )
        from codexbro.auth.login import browser_login

        for task in self.running.values():
            task.cancel()
        login_id = secrets.token_hex(8)
        shown: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def show(url: str) -> None:
            if not shown.done():
                shown.set_result(url)

        async def run() -> None:
            error: str | None = None
            try:
                await browser_login(home, open_browser=False, show=show)
            except asyncio.CancelledError:
                error = "cancelled"
            except Exception as exc:  # a refused or expired login: said to the client
                error = str(getattr(exc, "message", exc))
            finally:
                self.running.pop(login_id, None)
            if not shown.done():
                shown.set_exception(RpcError(INVALID_REQUEST, f"login could not start: {error}"))
            await notify(
                "account/login/completed", {"loginId": login_id, "success": error is None, "error": error}
            )
            if error is None:
                await notify("account/updated", {"authMode": "chatgpt", "planType": None})

        self.running[login_id] = asyncio.get_running_loop().create_task(run())
        url = await shown
        return {"type": "chatgpt", "loginId": login_id, "authUrl": url}

    def cancel(self, params: dict[str, Any]) -> dict[str, Any]:
        login_id = require(params, "loginId", str)
        task = self.running.get(login_id)
        if task is None:
            return {"status": "notFound"}
        task.cancel()
        return {"status": "canceled"}
