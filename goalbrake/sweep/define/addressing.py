"""Dotted addresses of fit arguments inside a LightningCLI config dict.

A sweep names what it varies by the path a user would type after ``goalbrake fit --``,
checked against the classes the base config names (their ``__init__`` signatures), so a
typo fails before any trial starts:

==============================  ==================================================
address                          where it lands in the config
==============================  ==================================================
``optimizer.lr``                 ``optimizer.init_args.lr`` (``init_args`` optional)
``data.batch_size``              ``data.init_args.batch_size``
``model.backbone.layout``        ``model.backbone.init_args.layout``
``trainer.max_epochs``           ``trainer.max_epochs``
``brake.goal``                   ``init_args.goal`` of the ``GoalBrake`` entry of
                                 ``trainer.callbacks``
``callbacks.EnergyMonitor.x``    ``init_args.x`` of the callback whose class is named so
==============================  ==================================================

Every address has one canonical spelling (``init_args`` dropped, ``brake.`` for the
GoalBrake callback); trials store their parameters under it.

Example:
    >>> config = {"optimizer": {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.1}}}
    >>> address = resolve("optimizer.init_args.lr", config)
    >>> address.name, address.keys
    ('optimizer.lr', ('optimizer', 'init_args', 'lr'))
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from goalbrake.app import callback_name, is_goal_brake
from goalbrake.callbacks import GoalBrake

__all__ = ["Address", "AddressError", "assign", "resolve"]

#: Roots whose class is fixed by the app rather than named by a ``class_path``.
_FIXED_ROOTS = {
    "trainer": "lightning.pytorch.Trainer",
    "model": "goalbrake.module.ImageClassifier",
}
#: Roots that hold a ``class_path``/``init_args`` pair in the config.
_SUBCLASS_ROOTS = ("data", "optimizer", "lr_scheduler")
#: The alias for the goal-oriented braking callback.
BRAKE_ALIAS = "brake"
BRAKE_CLASS = GoalBrake.__name__
#: Trainer arguments a sweep must not vary by address (the sweep owns them).
_RESERVED = {
    "trainer.callbacks": "vary a callback's argument as brake.<arg> or callbacks.<Class>.<arg>",
    "trainer.logger": "each trial logs to runs/<study>/trial_<n>; the sweep sets the logger",
    "seed_everything": "use the sweep's seed: and seeds: keys",
}


class AddressError(ValueError):
    """An address that does not name a fit argument of the base config."""


@dataclass(frozen=True)
class Address:
    """A resolved address: ``name`` (canonical spelling) and ``keys`` into the config dict."""

    name: str
    keys: tuple[str | int, ...]


def _class_of(class_path: str, where: str) -> type:
    module_name, _, attr = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError):
        raise AddressError(f"{where}: cannot import class_path {class_path!r}") from None


@cache
def _arguments(cls: type) -> tuple[tuple[str, ...], bool]:
    """The ``__init__`` argument names of ``cls`` and whether it takes ``**kwargs``."""
    try:
        params = inspect.signature(cls.__init__).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - builtins without signatures
        return (), True
    names = tuple(
        p.name
        for p in params
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    )
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_argument(cls: type, arg: str, shown: str) -> None:
    names, open_ended = _arguments(cls)
    if arg in names or open_ended:
        return
    allowed = ", ".join(n for n in names if n not in ("params", "backbone_kwargs"))
    raise AddressError(f"unknown parameter {shown!r}: {cls.__name__} takes {allowed}")


def _is_class_spec(node: Any) -> bool:
    return isinstance(node, Mapping) and "class_path" in node


def _callback_index(config: Mapping[str, Any], class_name: str, shown: str) -> int:
    callbacks = (config.get("trainer") or {}).get("callbacks") or []
    if isinstance(callbacks, Mapping):
        callbacks = [callbacks]
    if class_name == BRAKE_CLASS:
        hits = [i for i, entry in enumerate(callbacks) if is_goal_brake(entry)]
    else:
        hits = [i for i, entry in enumerate(callbacks) if callback_name(entry) == class_name]
    if not hits:
        present = ", ".join(n for e in callbacks if (n := callback_name(e)) is not None)
        raise AddressError(
            f"unknown parameter {shown!r}: the base config has no {class_name} in "
            f"trainer.callbacks (it has: {present or 'none'})"
        )
    if len(hits) > 1:
        raise AddressError(
            f"ambiguous parameter {shown!r}: the base config has {len(hits)} {class_name} "
            "entries in trainer.callbacks"
        )
    return hits[0]


def _walk_class(
    node: Any, cls: type, rest: list[str], keys: list[str | int], name: list[str], shown: str
) -> None:
    """Descend from a node whose class is ``cls`` (its init args are in ``node``)."""
    if not rest:
        return
    arg = rest.pop(0)
    _check_argument(cls, arg, shown)
    keys.append(arg)
    name.append(arg)
    child = node.get(arg) if isinstance(node, Mapping) else None
    _walk_value(child, rest, keys, name, shown)


def _walk_value(
    node: Any, rest: list[str], keys: list[str | int], name: list[str], shown: str
) -> None:
    """Descend into a value: a class spec, a plain dict from the YAML, or a leaf."""
    if not rest:
        return
    if _is_class_spec(node):
        if rest[0] == "class_path":
            rest.pop(0)
            keys.append("class_path")
            name.append("class_path")
            if rest:
                raise AddressError(f"unknown parameter {shown!r}: class_path has no fields")
            return
        if rest[0] == "init_args":
            rest.pop(0)
        cls = _class_of(str(node["class_path"]), shown)
        keys.append("init_args")
        _walk_class(node.get("init_args") or {}, cls, rest, keys, name, shown)
        return
    if isinstance(node, Mapping) and rest[0] in node:
        key = rest.pop(0)
        keys.append(key)
        name.append(key)
        _walk_value(node[key], rest, keys, name, shown)
        return
    raise AddressError(
        f"unknown parameter {shown!r}: {'.'.join(name)} is not a class with arguments "
        "in the base config"
    )


def _resolve_callback(path: str, parts: list[str], config: Mapping[str, Any]) -> Address:
    """``brake.<arg>`` or ``callbacks.<Class>.<arg>``: an argument of a callback entry."""
    if parts[0] == BRAKE_ALIAS:
        class_name, rest, prefix = BRAKE_CLASS, parts[1:], [BRAKE_ALIAS]
    else:
        if len(parts) < 2:
            raise AddressError(f"invalid parameter path {path!r} (callbacks.<Class>.<arg>)")
        class_name, rest = parts[1], parts[2:]
        prefix = [BRAKE_ALIAS] if class_name == BRAKE_CLASS else ["callbacks", class_name]
    if not rest:
        raise AddressError(f"invalid parameter path {path!r} (name an argument: {path}.<arg>)")
    index = _callback_index(config, class_name, path)
    entry = config["trainer"]["callbacks"][index]
    keys: list[str | int] = ["trainer", "callbacks", index, "init_args"]
    name = list(prefix)
    if rest[0] == "init_args":
        rest = rest[1:]
    cls = _class_of(str(entry["class_path"]), path)
    _walk_class(entry.get("init_args") or {}, cls, list(rest), keys, name, path)
    return Address(".".join(name), tuple(keys))


def resolve(path: str, config: Mapping[str, Any]) -> Address:
    """Check ``path`` against ``config`` and return its canonical name and config keys.

    Args:
        path: a dotted address (``optimizer.lr``, ``brake.goal``, ...).
        config: the base fit config (the parsed YAML).

    Raises:
        AddressError: the address names no argument of the classes in ``config``.
    """
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise AddressError(f"invalid parameter path {path!r} (a dotted path like optimizer.lr)")
    parts = path.split(".")
    for reserved, fix in _RESERVED.items():
        if path == reserved or path.startswith(reserved + "."):
            raise AddressError(f"parameter {path!r} cannot be varied by a sweep: {fix}")
    root = parts[0]
    keys: list[str | int]
    if root in (BRAKE_ALIAS, "callbacks"):
        return _resolve_callback(path, parts, config)
    if root in _FIXED_ROOTS:
        if len(parts) == 1:
            raise AddressError(f"invalid parameter path {path!r} (name an argument: {root}.<arg>)")
        cls = _class_of(_FIXED_ROOTS[root], path)
        keys, name = [root], [root]
        _walk_class(config.get(root) or {}, cls, parts[1:], keys, name, path)
        return Address(".".join(name), tuple(keys))
    if root in _SUBCLASS_ROOTS:
        node = config.get(root)
        if not _is_class_spec(node):
            raise AddressError(
                f"unknown parameter {path!r}: the base config has no {root}.class_path"
            )
        if len(parts) == 1:
            raise AddressError(f"invalid parameter path {path!r} (name an argument: {root}.<arg>)")
        keys, name = [root], [root]
        _walk_value(node, parts[1:], keys, name, path)
        return Address(".".join(name), tuple(keys))
    allowed = ", ".join([*_FIXED_ROOTS, *_SUBCLASS_ROOTS, BRAKE_ALIAS, "callbacks"])
    raise AddressError(f"unknown parameter {path!r}: a path starts with one of {allowed}")


def assign(config: dict[str, Any], address: Address, value: Any) -> None:
    """Set ``value`` at ``address`` in ``config`` (in place), creating ``init_args`` dicts."""
    node: Any = config
    for key, nxt in zip(address.keys[:-1], address.keys[1:], strict=True):
        if isinstance(key, int):
            node = node[key]
            continue
        if node.get(key) is None:
            node[key] = [] if isinstance(nxt, int) else {}
        node = node[key]
    node[address.keys[-1]] = value
