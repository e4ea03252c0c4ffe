"""A review as a sub-turn of its own (the TUI's ``/review``): an ephemeral session opened from the
caller's config with upstream's review set-up (``core/review.py``), one turn, the rendered review.
``codexbro exec review`` runs the same set-up in the exec session itself (its events are the
output)."""

from __future__ import annotations

from codexbro import protocol as p
from codexbro.config.types import Config
from codexbro.core.review import ReviewTarget, render_review, review_config


async def run_review(config: Config, target: ReviewTarget) -> str:
    """Run the review; the rendered answer (or what went wrong, as text)."""
    from codexbro.api.responses_client import ResponsesModelClient
    from codexbro.composition import SessionOptions, open_session, resolve

    request = target.request(config.cwd)
    session = open_session(
        resolve(review_config(config)),
        SessionOptions(ephemeral=True, source="review", subagents=False),
    )
    if isinstance(session.client, ResponsesModelClient):  # as 0.169: no base instructions, tagged
        session.client.base_instructions = ""
        session.client.subagent = "review"
    answer: str | None = None
    try:
        session.submit(p.UserTurn((p.UserInput("text", request),)))
        while True:
            msg = (await session.next_event()).msg
            if isinstance(msg, p.ErrorEvent):
                answer = f"review failed: {msg.message}"
            elif isinstance(msg, p.TaskComplete):
                answer = answer or msg.last_agent_message
                break
            elif isinstance(msg, p.TurnAborted):
                return "review interrupted"
    finally:
        await session.close()
    return render_review(answer) if answer else "the review produced no answer"
