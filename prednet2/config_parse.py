"""Parsing a run configuration: ``--set key=value`` strings, YAML files (a key given twice refused, errors on one
line), merging nested dicts, building the frozen dataclasses from a dict with each value checked against its field's
type (errors name the dotted key), and back to plain dicts.

``prednet2.config`` holds the dataclasses and the ``Config`` constructors that use these.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from .config_ranges import ConfigError, check_ranges


def parse_set(s: str) -> dict[str, Any]:
    """``"train.lr=1e-3"`` -> ``{"train": {"lr": 0.001}}``. Values are parsed as YAML scalars/lists."""
    if "=" not in s:
        raise ConfigError(f"--set {s!r}: expected key=value, e.g. --set train.lr=1e-3")
    key, _, raw = s.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {s!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    out: dict[str, Any] = {}
    cur = out
    parts = key.split(".")
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def normalise_shortcuts(d: dict[str, Any]) -> dict[str, Any]:
    # `--set motion=off` (YAML parses off as False) turns the whole modality off.
    m = d.get("motion")
    if isinstance(m, bool | str) and not isinstance(m, dict):
        if isinstance(m, str) and m.lower() not in {"on", "off", "true", "false"}:
            raise ConfigError(f"motion: expected on/off or a mapping, got {m!r}")
        on = m if isinstance(m, bool) else m.lower() in {"on", "true"}
        d = {**d, "motion": {"enabled": on}}
    return d


def dotted_keys(d: dict[str, Any], prefix: str = "") -> frozenset[str]:
    """The dotted names of a nested dict's values: ``{"model": {"flow_weight": 1}}`` -> ``{"model.flow_weight"}``."""
    out: set[str] = set()
    for k, v in d.items():
        out |= dotted_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}"}
    return frozenset(out)


def deep_merge(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``b`` over ``a``, key by key. A section (a mapping) and a single value under one key is an error naming the key:
    replacing either by the other would silently drop what was given first (``--set train=fast --set train.lr=1``)."""
    out = dict(a)
    for k, v in b.items():
        old = out.get(k)
        if isinstance(v, dict) and isinstance(old, dict):
            out[k] = deep_merge(old, v, f"{prefix}{k}.")
        elif k in out and isinstance(v, dict) != isinstance(old, dict):
            key = prefix + k
            value, section = (old, v) if isinstance(v, dict) else (v, old)
            sub = next(iter(section), "NAME")
            hint = f" (a preset is model.preset={value})" if key == "model" and isinstance(value, str) else ""
            raise ConfigError(
                f"{key}: given both a value ({value!r}) and keys below it ({key}.{sub}); a key is one or the "
                f"other{hint}"
            )
        else:
            out[k] = v
    return out


def build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        key = prefix + unknown[0]
        raise ConfigError(f"unknown config key {key!r}; valid keys here: {', '.join(sorted(names))}")
    kwargs = {}
    for name in d:
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(tp, d[name], prefix + name + ".")
        else:
            kwargs[name] = coerce(d[name], tp, prefix + name)
    obj = cls(**kwargs)
    if not prefix:  # the whole Config is built: check every declared range once
        check_ranges(obj)
    return obj


def coerce(v: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(v, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {v!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(x, args[0], f"{key}[{i}]") for i, x in enumerate(v))
        if len(v) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(v)}")
        return tuple(coerce(x, t, f"{key}[{i}]") for i, (x, t) in enumerate(zip(v, args, strict=True)))
    if origin in (typing.Union, types.UnionType):
        errors = []
        for t in typing.get_args(tp):
            try:
                return coerce(v, t, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0])
    if tp is type(None):
        if v is None:
            return None
        raise ConfigError(f"{key}: expected null, got {v!r}")
    if tp is bool:
        if isinstance(v, bool):
            return v
        raise ConfigError(f"{key}: expected true/false, got {v!r}")
    if tp is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise ConfigError(f"{key}: expected an integer, got {v!r}")
    if tp is float:
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, str):  # YAML 1.1 reads "1e-3" as a string
            try:
                return float(v)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number, got {v!r}")
    if tp is str:
        if isinstance(v, str):
            return v
        if isinstance(v, int | float) and not isinstance(v, bool):
            return str(v)
        raise ConfigError(f"{key}: expected a string, got {v!r}")
    return v


def to_plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: to_plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_plain(v) for v in x]
    return x


def set_list(sets: Any, where: str) -> list[str]:
    """``sets`` as the list of 'key=value' strings it must be (one string alone would be read letter by letter)."""
    if isinstance(sets, str):
        raise ConfigError(
            f"{where}: sets must be a list of 'key=value' strings, got the string {sets!r}; pass [{sets!r}]"
        )
    return list(sets or [])


class UniqueKeyLoader(yaml.SafeLoader):
    """safe_load that refuses a key given twice in one mapping (YAML says keys are unique; PyYAML kept the last, so
    a pasted second ``train:`` section silently replaced the first)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} given twice (first on line {seen[key]})", key_node.start_mark
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's error on one line: what is wrong and where (its own text spans several lines)."""
    mark = getattr(e, "problem_mark", None)
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}" if mark is not None else what
