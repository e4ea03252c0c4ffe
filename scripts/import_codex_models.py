"""Add the models Codex 0.169 bundles to codexbro's bundled catalog (issue 14.6).

    python scripts/import_codex_models.py [tests/fixtures/codex-0.169/debug-models.json]

Reads `codex debug models` output (the fixture; provenance in its NOTES.md) and writes every entry
codexbro does not already have into ``src/codexbro/models/models.json``, as upstream wrote it
except for:

- ``base_instructions`` and ``model_messages`` (tens of KB of prompt per model) are left out:
  codexbro prompts these models with its own ``gpt`` instruction family (``instructions_family``);
- ``supports_parallel_tool_calls: true`` is added (0.169 entries no longer carry the key; the
  reference records upstream sending ``parallel_tool_calls: true`` for them).

Every other field stays, including those codexbro does not act on (``models show`` lists them).
The seed's entries are left as they are, and ``default_model`` keeps codexbro's default.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "src" / "codexbro" / "models" / "models.json"
FIXTURE = ROOT / "tests" / "fixtures" / "codex-0.169" / "debug-models.json"
DROPPED = ("base_instructions", "model_messages")
DEFAULT_MODEL = "gpt-5.3-codex"


def convert(entry: dict[str, object]) -> dict[str, object]:
    out = {k: v for k, v in entry.items() if k not in DROPPED}
    out["instructions_family"] = "gpt"
    out.setdefault("supports_parallel_tool_calls", True)
    return out


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else FIXTURE
    upstream = json.loads(source.read_text(encoding="utf-8"))["models"]
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    have = {m["slug"] for m in catalog["models"]}
    added = [convert(m) for m in upstream if m["slug"] not in have]
    catalog["models"] += added
    catalog["default_model"] = DEFAULT_MODEL
    CATALOG.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"added {len(added)} models: {', '.join(m['slug'] for m in added)}")  # type: ignore[misc]


if __name__ == "__main__":
    main()
