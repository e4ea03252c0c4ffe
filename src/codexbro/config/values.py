"""The values a policy or setting may take, as ``Literal`` types: a typo is a type error (mypy's
strict equality), the validator allows exactly these (``config/keys.py``), and the CLI's choices
are these. Kept apart from ``types.py`` so the command line can use them without the dataclasses.
"""

from __future__ import annotations

from typing import Literal, get_args

# Policy values: a typo is a type error (mypy's strict equality), and the validator's allowed values
# are these (config/keys.py).
ApprovalPolicy = Literal["untrusted", "on-failure", "on-request", "never"]
SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]
SandboxBackend = Literal["auto", "namespaces", "bubblewrap", "landlock"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max", "ultra"]
ReasoningSummary = Literal["auto", "concise", "detailed", "none"]
Verbosity = Literal["low", "medium", "high"]
CompactionStrategy = Literal["auto", "remote", "inline", "local"]
HistoryPersistence = Literal["save-all", "none"]
EnvInherit = Literal["all", "core", "none"]
TrustLevel = Literal["trusted", "untrusted"]
CredentialsStore = Literal["file", "keyring", "auto", "ephemeral"]
SANDBOX_MODES: tuple[SandboxMode, ...] = get_args(SandboxMode)

# What the policy decides for one command, and for one patch (sandbox/exec_policy.py, policy.py).
CommandVerdict = Literal["run", "ask", "reject"]
PatchVerdict = Literal["auto", "ask", "reject"]
