"""The interactive front end: ``codexbro [PROMPT]`` — a full-screen Textual app that speaks only the
core's Op/Event protocol and opens its session through the composition root. Textual is imported
here and nowhere else, so ``--version`` and ``exec`` never pay for it."""
