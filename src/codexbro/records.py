"""The package's records are ``msgspec.Struct`` classes, not dataclasses; this module holds the two
helpers the code used from ``dataclasses``.

Why Structs: a dataclass is built by ``exec``-ing generated source for each method — 0.3–1 ms per
class on a 2-core machine, about 120 ms of every ``codexbro exec`` start for ~150 classes. A Struct
class is built in C in microseconds, its instances are smaller (slots) and faster to create.
Differences to keep in mind when writing one: options are class arguments
(``class X(Struct, frozen=True)``; ``eq=False`` for identity equality), ``msgspec.field`` takes
only ``default``/``default_factory``/``name`` (no ``repr=``/``compare=``/``init=``), instances
have no ``__dict__`` (undeclared attributes cannot be set), and ``replace``/``as_dict`` here stand
for ``dataclasses.replace``/``asdict``.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct
from msgspec.structs import replace

__all__ = ["Struct", "as_dict", "replace"]


def as_dict(obj: Any) -> Any:
    """``dataclasses.asdict`` for Structs: nested Structs become dicts; lists, tuples and dicts are
    copied (tuples stay tuples); other values are returned as they are."""
    if isinstance(obj, Struct):
        return {name: as_dict(getattr(obj, name)) for name in obj.__struct_fields__}
    if isinstance(obj, list):
        return [as_dict(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(as_dict(v) for v in obj)
    if isinstance(obj, dict):
        return {k: as_dict(v) for k, v in obj.items()}
    return obj
