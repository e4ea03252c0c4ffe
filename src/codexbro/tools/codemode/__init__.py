"""Code mode (Codex CLI 0.169's ``tool_mode = code_mode_only``): the model gets one freeform tool,
``exec``, that runs JavaScript in a fresh V8 isolate; the session's other tools are reachable from the
script as ``tools.NAME(args)`` and still run through their own handlers — same sandbox, same
approvals, same events. A script that runs past its ``yield_time_ms`` leaves a *cell* running that
the model resumes with ``wait``.

- ``runtime``: one cell — the isolate (mini-racer), the globals the script sees, its output;
- ``declare``: the TypeScript declarations of the nested tools and the ``additional_tools`` input
  item the request carries instead of a top-level ``tools`` list;
- ``handlers``: the ``exec`` and ``wait`` tools, and the session's cells and stored values.

Output shapes (headers, error texts, truncation, ``notify`` items, cell ids) were captured from the
real 0.169 (``tests/fixtures/codex-0.169/code-mode-exec.json``).
"""
