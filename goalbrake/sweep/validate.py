"""Check that every trial of a sweep builds, before the first one starts.

:func:`check_configs` builds the first trial of each base config with the app's builder
(every class instantiated, so constructor checks such as GoalBrake's ``mode`` run), builds
one variant per further string value of each categorical parameter, and parses (types
only, cheap) every grid point, or both ends of every range and every choice of a TPE/random
space. Nothing is trained and no data is loaded.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import re
from collections.abc import Iterator
from typing import Any

from goalbrake.sweep.objective import build_trial, fit_config
from goalbrake.sweep.spec import (
    ROW_PARAM,
    SEED_PARAM,
    Choices,
    FloatRange,
    IntRange,
    SweepSpec,
    SweepSpecError,
    TrialSetting,
)

__all__ = ["check_configs", "explain_parse_error"]

#: Grid points parsed at most (the rest share their structure with those).
MAX_PARSES = 400


def explain_parse_error(err: BaseException) -> str:
    """One line from jsonargparse's nested error: the key path and the first complaint."""
    text = str(err)
    keys = re.findall(r'Parser key "([^"]+)"', text)
    lines = [line.strip(" -") for line in text.splitlines() if line.strip(" -")]
    detail = lines[0] if lines else type(err).__name__
    # The most telling complaint first: a type, an unknown option, a constructor's check.
    for pattern in (r"Expected a <class", r"is not accepted", r"Invalid|must be|not a valid"):
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

    def first(p: Any) -> Any:
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


def check_configs(spec: SweepSpec, runs_dir: str = "runs") -> int:
    """Build and parse the sweep's trial configs; returns how many were checked.

    Raises:
        SweepSpecError: a trial config that the app's parser or a class rejects, in one line.
    """
    where = str(spec.path)
    settings = list(_settings(spec))
    parsers: dict[str, Any] = {}
    built: set[tuple[str, str, str]] = set()
    checked = 0
    with _quiet():
        for setting in settings:
            config = fit_config(spec, setting, runs_dir, 0)
            full_build = setting.base not in parsers
            if not full_build:
                for name, value in setting.values.items():
                    if isinstance(value, str) and (setting.base, name, value) not in built:
                        full_build = True
            if full_build:
                try:
                    cli = build_trial(config)
                except SystemExit as err:  # pragma: no cover - exit_on_error=False
                    raise SweepSpecError(f"{where}: {_label(setting)} does not build") from err
                except Exception as err:
                    raise SweepSpecError(
                        f"{where}: {_label(setting)} does not build: {explain_parse_error(err)}"
                    ) from None
                parsers.setdefault(setting.base, cli.parser)
                for name, value in setting.values.items():
                    if isinstance(value, str):
                        built.add((setting.base, name, value))
            else:
                import copy

                try:
                    parsers[setting.base].parse_object(copy.deepcopy(config))
                except Exception as err:
                    raise SweepSpecError(
                        f"{where}: {_label(setting)} does not parse: {explain_parse_error(err)}"
                    ) from None
            checked += 1
    return checked
