"""The pytorch_lightning twin: goalbrake.pytorch_lightning.GoalBrake in a pytorch_lightning fit."""

from __future__ import annotations

import pytest

pytest.importorskip("pytorch_lightning")

from goalbrake.pytorch_lightning import GoalBrake


def test_pytorch_lightning_twin_brakes_once(make_module, make_trainer, read_csv_metrics) -> None:
    import pytorch_lightning

    brake = GoalBrake(goal=0.3, factor=50.0, half_life=3.0)
    assert isinstance(brake, pytorch_lightning.Callback)
    trainer = make_trainer(lightning="pytorch_lightning", callbacks=[brake], max_epochs=3)
    assert isinstance(trainer, pytorch_lightning.Trainer)
    trainer.fit(make_module(lightning="pytorch_lightning"))

    assert [d.step for d in brake.history] == [brake.braked_step]
    assert trainer.optimizers[0].param_groups[0]["friction"] == 25.0
    m = read_csv_metrics(trainer)
    first = min(s for s, v in m["brake/braked"].items() if v == 1.0)
    assert first == brake.braked_step - 1
    assert m["brake/smoothed_loss"][first] <= m["brake/goal_loss"][first]
    assert m["brake/smoothed_loss"][first - 1] > m["brake/goal_loss"][first - 1]


def test_pytorch_lightning_hparams_logger_keeps_the_best_and_final_val_loss(
    make_module, make_trainer
) -> None:
    import pytorch_lightning

    from goalbrake.pytorch_lightning import HParamsLogger

    seen: list[float] = []

    class Record(pytorch_lightning.Callback):
        def on_validation_end(self, trainer, pl_module) -> None:
            if not trainer.sanity_checking:
                seen.append(float(trainer.callback_metrics["val/loss"]))

    hparams = HParamsLogger(monitor="val/loss", mode="min")
    assert isinstance(hparams, pytorch_lightning.Callback)
    trainer = make_trainer(
        lightning="pytorch_lightning",
        callbacks=[Record(), hparams],
        max_epochs=3,
        limit_val_batches=1.0,
    )
    trainer.fit(make_module(lightning="pytorch_lightning"))
    assert len(seen) == 3
    assert (hparams.best, hparams.final) == (min(seen), seen[-1])
