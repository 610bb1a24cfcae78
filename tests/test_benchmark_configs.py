"""configs/benchmark/<ds>_<arm>.yaml and experiments/benchmark/<ds>_<arm>_confirm.yaml are
their arm's selection: each config equals the fit config of the trial that
experiments/benchmark/selection.py selects from the committed tuning journal
(experiments/benchmark/<ds>_<arm>.journal), and each confirmation study is what it writes.
Both exist only for an arm whose tuning has finished; tests/test_configs.py trains each
config on tiny data."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from goalbrake.sweep.define import load_spec
from tests.test_benchmark_journals import REPO, complete_plan, load_script, tuning_journal

selection = load_script("selection")
CONFIGS = sorted((REPO / "configs" / "benchmark").glob("*.yaml"))


def _arm(path: Path) -> tuple[str, str]:
    dataset, _, arm = path.stem.partition("_")
    assert dataset in selection.DATASETS and arm in selection.ARMS, path.name
    return dataset, arm


def check_config(path: Path, journal: Path | None = None, confirm_dir: Path | None = None) -> None:
    """``path`` equals the selection from its tuning journal (the committed one unless
    ``journal``), and so does the confirmation study in ``confirm_dir``."""
    dataset, arm = _arm(path)
    chosen = selection.select_arm(dataset, arm, journal)
    assert yaml.safe_load(path.read_text()) == selection.tuned_config(chosen)
    assert path.read_text() == selection.config_text(chosen)
    confirm = (confirm_dir or selection.BENCHMARK) / f"{selection.confirm_name(dataset, arm)}.yaml"
    (row,) = load_spec(confirm).rows
    assert (row.label, dict(row.values)) == (chosen.label, chosen.values)


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_benchmark_config_is_its_studys_selected_row(path: Path) -> None:
    check_config(path)


def test_the_check_holds_for_a_written_config_and_catches_an_edit(tmp_path: Path) -> None:
    journal = tmp_path / "cifar10_phs.journal"
    tuning_journal(journal, "cifar10", "phs", complete_plan([0.6 + i / 100 for i in range(12)]))
    chosen = selection.select_arm("cifar10", "phs", journal)
    selection.write_selection(chosen, tmp_path, tmp_path / "configs")
    config = tmp_path / "configs" / "cifar10_phs.yaml"
    check_config(config, journal, tmp_path)
    text = config.read_text()
    lr = chosen.values["optimizer.lr"]
    config.write_text(text.replace(f"lr: {lr!r}", f"lr: {lr * (1 + 1e-12)!r}"))
    assert config.read_text() != text
    with pytest.raises(AssertionError):
        check_config(config, journal, tmp_path)


CONFIRMS = sorted(selection.BENCHMARK.glob("*_confirm.yaml"))


@pytest.mark.parametrize("path", CONFIRMS, ids=[p.stem for p in CONFIRMS])
def test_committed_confirm_study_is_what_the_selection_writes(path: Path) -> None:
    """A committed confirmation study is, to the byte, what selection.py writes from the
    committed tuning journal (so nothing was re-chosen by hand), and has its config."""
    dataset, arm = _arm(path.with_name(path.name.removesuffix("_confirm.yaml") + ".yaml"))
    chosen = selection.select_arm(dataset, arm)
    assert path.read_text() == selection.confirm_text(chosen)
    assert (REPO / "configs" / "benchmark" / f"{dataset}_{arm}.yaml").is_file()
