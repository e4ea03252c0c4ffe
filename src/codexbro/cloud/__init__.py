"""Codex cloud tasks on the local side: reading a task's status and attempts (``tasks``), finding
the environment for a repository (``envs``), and applying a task's diff to the work tree
(``apply``). The wire is ``api/chatgpt/backend.py``; the commands are ``cli/cloud.py``."""
