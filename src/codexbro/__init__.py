"""codexbro: a terminal coding agent over the OpenAI Responses API, built to be inspected.

Nothing is imported here on purpose: ``codexbro --version`` must start fast.
"""

__version__ = "0.1.0"
