"""``codexbro batch``: many agent tasks, each an ``exec`` turn in its own process and its own copy of
its repository, with results appended as they finish (``docs/batch.md``)."""
