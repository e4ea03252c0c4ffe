"""The composition root: the one place that turns a config into a running session.

``resolve(config)`` decides — purely, reading files only through injected ``Readers`` — the
provider, the credential, the model and its metadata, the base URL, and whether the embedded model
stands in, each with the reason it was chosen. ``open_session(resolution, options)`` builds the
collaborators (model client, rollout recorder, approval rules, tool resources) and hands them to a
``Session``. Every front end (exec, the inspection commands, models, the ChatGPT commands, and the
TUI and servers to come) goes through these two functions; nothing re-derives them.
"""

from codexbro.composition.open import SessionOptions, open_model_client, open_session, start_session
from codexbro.composition.resolve import Readers, Resolution, resolve

__all__ = [
    "Readers",
    "Resolution",
    "SessionOptions",
    "open_model_client",
    "open_session",
    "resolve",
    "start_session",
]
