"""Regenerate docs/config-keys.md from config/keys.py (tests/test_docs.py checks it is current).

python scripts/gen_config_docs.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def _type(spec: object) -> str:
    from codexbro.config.spec import MapOf, Scalar, Table

    if isinstance(spec, Scalar):
        return spec.expected
    if isinstance(spec, MapOf):
        return "tables by name"
    if isinstance(spec, Table):
        return "a table"
    return "?"


def _default(value: object) -> str:
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        value = list(value)
    return f"`{json.dumps(value)}`"


def render() -> str:
    from codexbro.config.keys import KEYS

    out = [
        "# Config keys",
        "",
        "Every key `config.toml` (and `-c`) accepts, generated from `src/codexbro/config/keys.py` — the one",
        "place each key is declared — by `scripts/gen_config_docs.py`; do not edit by hand. What the keys",
        "do in more words: [config.md](config.md). *profile*: may be set in `[profiles.NAME]`.",
        "",
        "| key | value | default | | what |",
        "|---|---|---|---|---|",
    ]
    for key in KEYS:
        if not key.used:
            continue
        what = key.doc.replace("|", "\\|")
        out.append(f"| `{key.path}` | {_type(key.spec)} | {_default(key.default)} | "
                   f"{'profile' if key.profile else ''} | {what} |")  # fmt: skip
    accepted = [f"`{k.path}`" for k in KEYS if not k.used]
    out += [
        "",
        "Accepted (upstream Codex knows them) and kept, but not acted on yet: " + ", ".join(accepted) + ".",
    ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    (ROOT / "docs" / "config-keys.md").write_text(render(), encoding="utf-8")
