"""Every check of a sweep that needs more than its file, in one place, before a trial starts.

:func:`validate` runs them all: the trial budget against the grid (:func:`check_target`),
DDP inside a trial (:func:`check_distributed`: refused), and :func:`check_configs`, which builds
the first trial of each base config with the app's builder, builds one variant per
further string value of each categorical parameter, parses (types only, cheap) every grid
point, or both ends of every range and every choice of a TPE/random space, and then
instantiates every class once per value it is given (both ends of every range, every
choice, every grid value with every row), so a constructor check (``Invalid goal value``)
fails here, in one line that names the address and the value. Nothing is trained and no
data is loaded.
"""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import logging
import re
from collections.abc import Iterator, Mapping

from jsonargparse import ArgumentParser

from goalbrake.app import build_config
from goalbrake.sweep.attrs import ROW_PARAM, SEED_PARAM
from goalbrake.sweep.define.params import (
    Choices,
    FloatRange,
    IntRange,
    ParamSpec,
    Scalar,
    SweepSpecError,
)
from goalbrake.sweep.define.spec import Config, SweepSpec, TrialSetting, fit_config

__all__ = [
    "check_configs",
    "check_distributed",
    "check_target",
    "explain_parse_error",
    "validate",
]

#: Grid points parsed at most (the rest share their structure with those).
MAX_PARSES = 400


def explain_parse_error(err: BaseException) -> str:
    """One line from jsonargparse's nested error: the key path and the first complaint."""
    text = str(err)
    keys = re.findall(r'Parser key "([^"]+)"', text)
    lines = [line.strip(" -") for line in text.splitlines() if line.strip(" -")]
    detail = lines[0] if lines else type(err).__name__
    # The most telling complaint first: a constructor's check (``Invalid goal value: ...``),
    # a type, an unknown option, any other check.
    for pattern in (
        r"^Invalid \w+ value",
        r"Expected a <class",
        r"is not accepted",
        r"Invalid|must be|not a valid",
    ):
        hit = next((line for line in lines if re.search(pattern, line)), None)
        if hit is not None:
            detail = hit
            break
    given = next((line for line in lines if line.startswith("Given value:")), None)
    if given is not None and "Expected a <class" in detail:
        detail = f"{detail} ({given.lower()})"
    where = ".".join(keys)
    return f"{where}: {detail}" if where else detail


def _settings(spec: SweepSpec) -> Iterator[TrialSetting]:
    """The trial settings to parse: all grid points, or the corners of a space."""
    if spec.is_grid:
        space = spec.grid_space()
        names = list(space)
        rows = {r.label: r for r in spec.rows}
        for combo in itertools.islice(itertools.product(*space.values()), MAX_PARSES):
            point = dict(zip(names, combo, strict=True))
            row = rows.get(point.pop(ROW_PARAM, None))
            seed = int(point.pop(SEED_PARAM, spec.seed))
            values = {**(dict(row.values) if row else {}), **point}
            yield TrialSetting(
                row.base if row else spec.base, values, seed, row.label if row else None
            )
        return

    def first(p: ParamSpec) -> Scalar:
        return p.values[0] if isinstance(p, Choices) else p.low

    base = {name: first(p) for name, p in spec.space.items()}
    yield TrialSetting(spec.base, base, spec.seed)
    for name, p in spec.space.items():
        others = p.values[1:] if isinstance(p, Choices) else [p.high]
        if isinstance(p, (FloatRange, IntRange)) and p.step is not None and p.step != 1:
            others = [p.high]
        for value in others:
            yield TrialSetting(spec.base, {**base, name: value}, spec.seed)


def _label(setting: TrialSetting) -> str:
    if setting.row:
        return f"row {setting.row!r}"
    shown = ", ".join(f"{k}={v}" for k, v in setting.values.items())
    return f"trial ({shown})"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Builds print Lightning's device banner; checking configs should not."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _value_settings(spec: SweepSpec) -> Iterator[TrialSetting]:
    """Settings that hold every value of every parameter: both ends of each range, each
    choice, each grid axis value with every row; one value changed at a time."""
    if not spec.is_grid:
        yield from _settings(spec)
        return
    axes = {n: p.values for n, p in spec.space.items() if isinstance(p, Choices)}
    first = {n: values[0] for n, values in axes.items()}
    rows = spec.rows or [None]
    for row in rows:
        base = row.base if row else spec.base
        values = {**(dict(row.values) if row else {}), **first}
        label = row.label if row else None
        yield TrialSetting(base, values, spec.seed, label)
        for name, choices in axes.items():
            for value in choices[1:]:
                yield TrialSetting(base, {**values, name: value}, spec.seed, label)


def _instantiate(parser: ArgumentParser, config: Config) -> None:
    """Parse and instantiate every class of ``config``: constructors check their values."""
    parser.instantiate_classes(parser.parse_object(copy.deepcopy(config)))


def _culprit(
    spec: SweepSpec, setting: TrialSetting, parser: ArgumentParser, runs_dir: str
) -> str | None:
    """The one value of ``setting`` that its base config does not take, as a line."""
    for name, value in setting.values.items():
        alone = TrialSetting(setting.base, {name: value}, setting.seed)
        try:
            _instantiate(parser, fit_config(spec, alone, runs_dir, 0))
        except Exception as err:
            return f"{name}={value} does not build: {explain_parse_error(err)}"
    return None


def _check_values(spec: SweepSpec, parsers: Mapping[str, ArgumentParser], runs_dir: str) -> None:
    """Instantiate every value of every parameter once, naming the one a class rejects."""
    where = str(spec.path)
    done: set[tuple[str, str, str]] = set()
    for setting in _value_settings(spec):
        pairs = {(setting.base, n, repr(v)) for n, v in setting.values.items()}
        if pairs <= done:
            continue
        parser = parsers[setting.base]
        try:
            _instantiate(parser, fit_config(spec, setting, runs_dir, 0))
        except Exception as err:
            line = _culprit(spec, setting, parser, runs_dir)
            if line is None:
                line = f"{_label(setting)} does not build: {explain_parse_error(err)}"
            raise SweepSpecError(f"{where}: {line}") from None
        done |= pairs


def _build_culprit(spec: SweepSpec, setting: TrialSetting, runs_dir: str) -> str | None:
    """The one value the first trial of a base does not take, if its base alone builds."""
    alone = fit_config(spec, TrialSetting(setting.base, {}, setting.seed), runs_dir, 0)
    try:
        parser = build_config(alone).parser
    except Exception:
        return None
    return _culprit(spec, setting, parser, runs_dir)


def _build(spec: SweepSpec, setting: TrialSetting, config: Config, runs_dir: str) -> ArgumentParser:
    where = str(spec.path)
    try:
        cli = build_config(config)
    except SystemExit as err:  # pragma: no cover - exit_on_error=False
        raise SweepSpecError(f"{where}: {_label(setting)} does not build") from err
    except Exception as err:
        line = _build_culprit(spec, setting, runs_dir)
        if line is None:
            line = f"{_label(setting)} does not build: {explain_parse_error(err)}"
        raise SweepSpecError(f"{where}: {line}") from None
    return cli.parser


def _parse(parser: ArgumentParser, setting: TrialSetting, config: Config, where: str) -> None:
    try:
        parser.parse_object(copy.deepcopy(config))
    except Exception as err:
        raise SweepSpecError(
            f"{where}: {_label(setting)} does not parse: {explain_parse_error(err)}"
        ) from None


def check_configs(spec: SweepSpec, runs_dir: str = "runs") -> int:
    """Build and parse the sweep's trial configs; returns how many were checked.

    Raises:
        SweepSpecError: a trial config that the app's parser or a class rejects, in one line.
    """
    where = str(spec.path)
    parsers: dict[str, ArgumentParser] = {}
    built: set[tuple[str, str, str]] = set()
    checked = 0
    with _quiet():
        for setting in list(_settings(spec)):
            config = fit_config(spec, setting, runs_dir, 0)
            strings = [
                (setting.base, n, v) for n, v in setting.values.items() if isinstance(v, str)
            ]
            if setting.base not in parsers or any(s not in built for s in strings):
                parsers.setdefault(setting.base, _build(spec, setting, config, runs_dir))
                built.update(strings)
            else:
                _parse(parsers[setting.base], setting, config, where)
            checked += 1
        _check_values(spec, parsers, runs_dir)
    return checked


def check_target(spec: SweepSpec, target: int) -> None:
    """A grid runs each point once: ``target`` trials must fit in it."""
    if spec.is_grid and target > spec.grid_size():
        raise SweepSpecError(
            f"--n-trials {target} exceeds the grid's {spec.grid_size()} points of {spec.path}"
        )


def _many(value: object) -> bool:
    """Whether a ``devices``/``num_nodes`` value asks for more than one."""
    if isinstance(value, (list, tuple)):
        return len(value) > 1
    if isinstance(value, str) and "," in value:
        return len([v for v in value.split(",") if v.strip()]) > 1
    try:
        n = int(str(value))
    except ValueError:  # "auto": one device in a worker pinned to one GPU
        return False
    return n > 1 or n == -1


def check_distributed(spec: SweepSpec, runs_dir: str = "runs") -> None:
    """Refuse a trial that trains on several devices or nodes (DDP inside a trial).

    A trial runs in its worker's one process: Lightning's ``ddp`` launcher would re-run
    the worker's command in every rank, and ``ddp_spawn`` pickles the trial's storage
    (``cannot pickle '_thread.lock' object``). Checked on the trial configs themselves, so
    a ``trainer.devices`` in the space, a row or ``fixed`` counts as much as the base's.
    """
    for setting in _settings(spec):
        trainer = fit_config(spec, setting, runs_dir, 0).get("trainer") or {}
        asked = [
            f"trainer.{key}={trainer[key]!r}"
            for key in ("devices", "num_nodes")
            if key in trainer and _many(trainer[key])
        ]
        if asked:
            strategy = trainer.get("strategy", "auto")
            raise SweepSpecError(
                f"{spec.path}: {_label(setting)} trains on several devices ({', '.join(asked)}, "
                f"trainer.strategy={strategy!r}); DDP inside a sweep trial is not supported: "
                "train each trial on one device and run one worker per GPU (--workers auto)"
            )


def validate(spec: SweepSpec, target: int, *, runs_dir: str = "runs") -> int:
    """All of the above; returns how many trial configs were checked.

    Raises:
        SweepSpecError: the first problem, in one line.
    """
    check_target(spec, target)
    check_distributed(spec, runs_dir)
    return check_configs(spec, runs_dir)
