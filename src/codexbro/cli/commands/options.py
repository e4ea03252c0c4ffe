"""Option groups several commands share."""

from __future__ import annotations

import argparse
from typing import get_args

from codexbro.config import values

SANDBOX_MODES = list(values.SANDBOX_MODES)  # the choices of -s / --sandbox: the config's own values
APPROVAL_POLICIES = list(get_args(values.ApprovalPolicy))
LOCAL_PROVIDERS = ["ollama", "lmstudio", "embedded"]


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value")  # fmt: skip
    parser.add_argument("-p", "--profile", help="config profile to apply")


def add_exec_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--json", "--experimental-json", action="store_true", help="print events as JSONL on stdout")
    add("-m", "--model", help="model slug to use")
    add("-s", "--sandbox", choices=SANDBOX_MODES, help="sandbox policy")
    add("-C", "--cd", metavar="DIR", help="working directory for the agent")
    add("-c", "--config", dest="config_overrides", action="append", default=[], metavar="KEY=VALUE",
        help='override a config value (TOML value, dotted key), e.g. -c model="gpt-5.4"')  # fmt: skip
    add("-p", "--profile", help="config profile ([profiles.NAME]) to apply")
    add("--skip-git-repo-check", action="store_true", help="allow running outside a git repository")
    add("-o", "--output-last-message", metavar="FILE", help="write the final message to FILE")
    add("--output-schema", metavar="FILE", help="JSON Schema the final message must follow")
    add("--color", choices=["always", "never", "auto"], default="auto")
    add("--ephemeral", action="store_true", help="do not write a rollout file")
    add(
        "--full-auto",
        action="store_true",
        help="convenience: --sandbox workspace-write (approvals are off in exec)",
    )
    add("--dangerously-bypass-approvals-and-sandbox", "--yolo", dest="yolo", action="store_true",
        help="no sandbox, no approvals: only inside an externally sandboxed environment")  # fmt: skip
    add("--oss", action="store_true", help="use a local open-weight model provider")
    add("--local-provider", choices=LOCAL_PROVIDERS, help="which local provider --oss uses")
    add("-i", "--image", dest="images", action="extend", nargs="+", default=[], metavar="FILE",
        help="attach images to the prompt (several: -i a.png b.png, or -i a.png,b.png)")  # fmt: skip
    add("--add-dir", dest="add_dirs", action="append", default=[], metavar="DIR",
        help="another directory the agent may write to (workspace-write sandbox)")  # fmt: skip
    add("--strict-config", action="store_true", help="treat unknown config keys as errors")
    add("--ignore-user-config", action="store_true", help="do not read $CODEXBRO_HOME/config.toml")
    add("--ignore-rules", action="store_true", help="do not load approval rules files")
    add(
        "--trace", metavar="FILE", help="write a JSONL trace of every request, decision and tool call to FILE"
    )
    add("--enable", action="append", default=[], metavar="FEATURE", help="turn a feature on")
    add("--disable", action="append", default=[], metavar="FEATURE", help="turn a feature off")


# exec options that take a value (used to find the first positional, to spot `exec resume`).
EXEC_VALUE_OPTIONS = {
    "-m", "--model", "-s", "--sandbox", "-C", "--cd", "-c", "--config", "-p", "--profile",
    "-o", "--output-last-message", "--output-schema", "--color", "--local-provider",
    "-i", "--image", "--enable", "--disable", "--add-dir", "--trace",
}  # fmt: skip
