"""Declared value ranges of config fields, and the one check that reads them.

Each numeric or enum field of a config dataclass states what it accepts once, in its metadata (``_r(...)`` for
bounds, ``_one_of(...)`` for choices); ``check_ranges`` (called whenever a Config is built from a dict, a YAML file
or --set) is the one reader. A field without metadata accepts any value of its type, so a new field needs no change
here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A config key or value is invalid. The message names the dotted key."""


def _r(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
       lt: float | None = None, min_len: int | None = None, ordered: bool = False) -> Any:  # fmt: skip
    """A field whose value (every element, for a tuple) must lie in the given bounds; ``ordered``: a tuple whose
    entries never decrease (a [lo, hi] range)."""
    bounds = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    md: dict[str, Any] = {"range": bounds}
    if min_len is not None:
        md["min_len"] = min_len
    if ordered:
        md["ordered"] = True
    return field(default=default, metadata=md)


def _one_of(default: str, *choices: str) -> Any:
    """An enum-like string field: one of ``choices``."""
    return field(default=default, metadata={"choices": (default, *choices)})


_OPS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b), "le": ("<=", lambda v, b: v <= b),
        "lt": ("<", lambda v, b: v < b)}  # fmt: skip


def describe_range(bounds: dict[str, float]) -> str:
    """``{"ge": 0, "lt": 1}`` -> ``">= 0 and < 1"``."""
    return " and ".join(f"{_OPS[k][0]} {v:g}" for k, v in bounds.items())


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Raise ConfigError naming the dotted key, the value and the allowed range for the first field out of range.

    Recurses into nested config dataclasses. Reads only field metadata (``range``, ``min_len``, ``ordered``,
    ``choices``).
    """
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(v):
            check_ranges(v, key + ".")
            continue
        md = f.metadata
        if isinstance(f.default, tuple) and not isinstance(v, tuple | list):  # a dataclass built directly
            raise ConfigError(f"{key}: expected a tuple such as {f.default!r}, got {type(v).__name__} {v!r}")
        if "choices" in md and v not in md["choices"]:
            raise ConfigError(f"{key}: unknown value {v!r}; choose one of {list(md['choices'])}")
        if "min_len" in md and len(v) < md["min_len"]:
            raise ConfigError(f"{key}: {list(v)} has {len(v)} entries; expected at least {md['min_len']}")
        if md.get("ordered") and any(b < a for a, b in zip(v, v[1:])):
            raise ConfigError(f"{key}: {list(v)} is not a [low, high] range; give the smaller value first")
        bounds = md.get("range")
        if not bounds:
            continue
        for i, x in enumerate(v) if isinstance(v, tuple | list) else [(None, v)]:
            if not isinstance(x, int | float) or isinstance(x, bool):
                where = f"{key}={x!r}" if i is None else f"{key}={list(v)} (entry {i}: {x!r})"
                raise ConfigError(f"{where} is not a number; expected {describe_range(bounds)}")
            if isinstance(x, float) and not math.isfinite(x):  # inf would pass a one-sided bound
                where = f"{key}={x!r}" if i is None else f"{key}={list(v)} (entry {i}: {x!r})"
                raise ConfigError(f"{where} is not a finite number; expected {describe_range(bounds)}")
            if not all(_OPS[k][1](x, b) for k, b in bounds.items()):
                where = f"{key}={x!r}" if i is None else f"{key}={list(v)} (entry {i}: {x!r})"
                raise ConfigError(f"{where} is out of range; expected {describe_range(bounds)}")
