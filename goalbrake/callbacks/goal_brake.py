r"""GoalBrake: multiply the optimizer's friction once the training loss reaches a goal.

This file imports no Lightning: :class:`GoalBrakeBase` works on any Trainer by duck typing,
and :mod:`goalbrake.callbacks` (``lightning.pytorch``) and :mod:`goalbrake.pytorch_lightning`
bind it to each distribution's ``Callback``. The decisions come from a
:class:`~goalbrake.braking.BrakeController`; the callback only translates hooks into
controller calls and carries the decisions out with :mod:`goalbrake.braking.adapters`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from goalbrake.braking import (
    DEFAULT_MODE,
    MODES,
    SMOOTHINGS,
    BestWeights,
    Brake,
    BrakeController,
    Decision,
    FrictionAdapter,
    Release,
    RestoreBest,
    apply_decisions,
    friction_adapter,
)
from goalbrake.callbacks.goal_from_run import goal_from_run
from goalbrake.callbacks.reference_loss import measure_reference_loss

__all__ = ["GoalBrakeBase"]

_logger = logging.getLogger(__name__)
# As Lightning does for its own loggers: the brake line is visible by default, and an
# application that configures logging itself takes it over.
if not logging.getLogger().hasHandlers():  # pragma: no cover - depends on the host process
    _logger.setLevel(logging.INFO)
    _logger.addHandler(logging.StreamHandler())
    _logger.propagate = False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _goal_from(
    source: str | None,
    at: float,
    margin: float,
    mode: str,
    **others: float | int | Sequence[Sequence[float]] | None,
) -> tuple[float, str]:
    """The goal (in ``mode``) from an earlier run, and where it came from; checks first."""
    if source is None:
        name, value = ("goal_at", at) if at != 1.0 else ("goal_margin", margin)
        raise ValueError(
            f"Invalid {name} value: {value!r} without goal_from (it shapes the goal taken "
            "from an earlier run; pass goal_from=<run> or drop it)"
        )
    for name, value in others.items():
        if value is not None:
            raise ValueError(
                f"Invalid goal_from value: {source!r} with {name}={value!r} (the goal comes "
                "from the earlier run; pass either goal_from or goal/stages/at_step)"
            )
    if mode == "absolute":
        raise ValueError(
            f"Invalid goal_from value: {source!r} with mode 'absolute' (the earlier run gives "
            "a fraction of L₀; use mode='remaining' or 'reduction')"
        )
    remaining, where = goal_from_run(source, at=at, margin=margin)
    return (remaining if mode == "remaining" else 1.0 - remaining), where


def _agree(trainer: Any) -> Callable[[bool], bool] | None:
    """One decision for all ranks, as Lightning's EarlyStopping takes it: a rank that
    fires makes every rank fire (a no-op on one device)."""
    reduce = getattr(getattr(trainer, "strategy", None), "reduce_boolean_decision", None)
    if reduce is None:
        return None
    return lambda decision: reduce(decision, all=False)


def _logs_now(trainer: Any) -> bool:
    """Whether the Trainer writes step metrics after this batch (its log_every_n_steps)."""
    if getattr(trainer, "fast_dev_run", False):
        return True
    every = getattr(trainer, "log_every_n_steps", 1)
    return bool(every) and trainer.global_step % every == 0


class GoalBrakeBase:
    r"""Brake the friction of every optimizer once the smoothed training loss reaches a goal.

    The reference loss L₀ is the mean loss of the *initial* weights over
    ``reference_batches`` training batches, measured at ``on_train_start`` with no update
    and no gradient by :func:`goalbrake.callbacks.reference_loss.measure_reference_loss`
    (or given as ``reference_loss``). The loss of a batch comes from the
    module's ``reference_loss(batch)`` method where it defines one, otherwise from its
    ``training_step(batch, batch_idx)`` (the returned tensor, or its ``"loss"``) with
    ``self.log`` silenced; the random number generators and the module's buffers (e.g.
    batch-norm statistics) are left as they were, so a run with GoalBrake trains exactly
    like one without until the brake. Afterwards every training batch's loss (from
    ``training_step``'s output) feeds an EMA kept on the device; every
    ``check_every_n_steps`` steps the callback reads it once and a
    :class:`~goalbrake.braking.BrakeController` decides. A stage fires the first time

    ======================  ====================  =========================================
    ``mode``                target                "braking at 0.15" means
    ======================  ====================  =========================================
    ``remaining``           goal · L₀             the loss has fallen *to* 15% of L₀
    ``reduction``           (1 − goal) · L₀       the loss has fallen *by* 15% of L₀
    ``absolute``            goal                  the loss is 0.15
    ======================  ====================  =========================================

    and multiplies the friction γ of every param group of every optimizer by ``factor``
    (:class:`goalbrake.PHS`, or ``torch.optim.SGD`` with momentum μ > 0 where γ → kγ is
    μ → μᵏ). Steps are optimizer steps (``trainer.global_step``; with gradient accumulation
    the step's loss is the mean over its batches): a brake decided at global step *t*, after
    the *t*-th update, acts from the next update on.

    **The clock trigger.** ``GoalBrake(at_step=N, factor=k)`` makes the same brake at global
    step N, whatever the loss (the event trigger's ablation; from YAML or the CLI
    ``init_args.at_step``). It needs no L₀ (none is measured), excludes ``goal``,
    ``stages``, ``patience`` and ``overfit_patience`` (one-line error), and is logged like a
    goal brake, but without ``brake/goal_loss``; its line reads ``GoalBrake: braked at step
    N (step N >= at_step N), friction x50``.

    Logged with ``log=True``: ``brake/goal_loss``, ``brake/smoothed_loss``,
    ``brake/friction`` (PHS: γ of the first param group; SGD: the friction rate −ln μ),
    ``brake/braked`` (1 while braked) and ``brake/reference_loss`` (L₀, which a later run's
    ``goal_from`` reads), at the steps where the Trainer writes its logs (every
    ``log_every_n_steps``) and at every step that acted: a ``pl_module.log`` call costs
    more than the whole decision, so the others are skipped. Lightning would drop the values
    of a step that acted but is no logging step, so there they also go to every logger's
    ``log_metrics`` on the row Lightning gives that step: the brake always has its point. A
    brake also writes the line
    ``GoalBrake: braked at step N (smoothed loss X <= goal Y), friction x50`` on rank zero
    (the ``goalbrake.callbacks.goal_brake`` logger) and, with a TensorBoard logger, the
    same text under ``brake/events``.

    Checkpoints hold L₀, the stages fired, the braked step, the smoothing state and the
    friction from before the first brake; the braked friction itself is part of the
    optimizer state that Lightning restores, so a resumed run neither brakes twice nor
    forgets that it braked. Under DDP the smoothed loss, L₀ and the validation loss are
    averaged over the ranks before each decision, and the decision itself is reduced with
    ``trainer.strategy.reduce_boolean_decision`` (as Lightning's ``EarlyStopping`` does), so
    every rank brakes at the same step even where rounding would split them.

    Args:
        goal: where the single stage fires, read according to ``mode`` (0.15,
            :data:`goalbrake.braking.DEFAULT_GOAL`, when none of ``goal``, ``stages`` and
            ``at_step`` is given; given with either of them: an error).
        factor: friction factor of the single stage (> 0; default 50,
            :data:`goalbrake.braking.DEFAULT_FACTOR`).
        mode: ``"remaining"``, ``"reduction"`` or ``"absolute"`` (see the table).
        reference_loss: L₀ as a number, or None to measure it.
        reference_batches: training batches to measure L₀ on.
        smoothing: ``"ema"``, ``"window"`` (mean of the last ``window`` losses) or
            ``"none"`` (the raw batch loss).
        half_life: EMA half-life in steps.
        window: window length in steps (``smoothing="window"``).
        stages: instead of ``goal``/``factor``, several ``(goal, factor)`` pairs fired in
            order, each targeting a lower loss than the one before.
        patience: fire a stage anyway once this many steps passed since the previous brake
            (or the start) without reaching its goal.
        restore_best: with ``patience``: before a patience brake, load the weights at the
            lowest smoothed loss seen (a CPU copy, taken at each new minimum; it is also
            saved in checkpoints).
        release_after: after the last stage, restore the friction from before the first
            brake once the smoothed loss has not set a new minimum for this many steps.
        kick: with ``release_after``: multiply the momentum by this at the release.
        overfit_patience: fire the next stage after ``overfit_monitor`` rose at this many
            validations in a row.
        overfit_monitor: the validation loss the overfit trigger watches.
        check_every_n_steps: decide every n-th step (each check reads the device once).
        log: log the ``brake/*`` metrics with ``pl_module.log``.
        at_step: the clock trigger: brake by ``factor`` at this global step instead of at
            a goal.
        goal_from: take the goal from an earlier run (its ``metrics.csv`` or a folder
            holding one, its TensorBoard run folder, or its checkpoint): the ratio L/L₀ it
            reached, see :func:`goalbrake.callbacks.goal_from_run.goal_from_run`. Where it
            came from is :attr:`goal_source`, written at fit start as the line ``GoalBrake:
            goal G from <source>`` (also under ``brake/events``) and, by
            :class:`~goalbrake.callbacks.HParamsLogger`, as the hparam ``goal_source``.
        goal_at: with ``goal_from``: read the ratio at this fraction of that run's steps
            (1: its end).
        goal_margin: with ``goal_from``: the goal is the ratio times this (>= 1).

    Raises:
        ValueError: at construction, a value out of range or an unknown name (the message
            lists what is allowed); at ``setup``, a setting the Trainer cannot serve (the
            message ends with the fix).
        TypeError: at ``on_fit_start``, before the first step, an optimizer other than
            :class:`goalbrake.PHS` or ``torch.optim.SGD`` with momentum.

    Example::

        import lightning.pytorch as pl
        from goalbrake.callbacks import GoalBrake

        brake = GoalBrake(goal=0.15, factor=50.0, mode="remaining")
        trainer = pl.Trainer(callbacks=[brake], max_epochs=20)
        trainer.fit(model, datamodule)  # model.configure_optimizers returns a goalbrake.PHS
        print(brake.braked_step, brake.reference_loss)
    """

    #: It reads the batch loss from training_step's output, the overfit monitor at validation.
    reads_loss_between_logs = False

    MODES = MODES
    SMOOTHINGS = SMOOTHINGS
    #: The names logged (see the class docstring for when).
    METRICS: tuple[str, ...] = (
        "brake/goal_loss",
        "brake/smoothed_loss",
        "brake/friction",
        "brake/braked",
        "brake/reference_loss",
    )

    def __init__(
        self,
        goal: float | None = None,
        factor: float | None = None,
        mode: str = DEFAULT_MODE,
        reference_loss: float | None = None,
        reference_batches: int = 10,
        smoothing: str = "ema",
        half_life: float = 10.0,
        window: int = 10,
        stages: Sequence[Sequence[float]] | None = None,
        patience: int | None = None,
        restore_best: bool = False,
        release_after: int | None = None,
        kick: float = 1.0,
        overfit_patience: int | None = None,
        overfit_monitor: str = "val/loss",
        check_every_n_steps: int = 1,
        log: bool = True,
        at_step: int | None = None,
        goal_from: str | None = None,
        goal_at: float = 1.0,
        goal_margin: float = 1.0,
    ) -> None:
        super().__init__()
        self.goal_source: str | None = None  # where a goal_from goal came from
        if goal_from is not None or (goal_at, goal_margin) != (1.0, 1.0):
            goal, self.goal_source = _goal_from(
                goal_from, goal_at, goal_margin, mode, goal=goal, stages=stages, at_step=at_step
            )
        self.controller = BrakeController(
            goal,
            factor,
            mode=mode,
            stages=stages,
            at_step=at_step,
            reference_loss=reference_loss,
            smoothing=smoothing,
            half_life=half_life,
            window=window,
            patience=patience,
            restore_best=restore_best,
            release_after=release_after,
            kick=kick,
            overfit_patience=overfit_patience,
            check_every_n_steps=check_every_n_steps,
        )
        if not _is_int(reference_batches) or reference_batches < 1:
            raise ValueError(
                f"Invalid reference_batches value: {reference_batches!r} (must be an integer >= 1)"
            )
        if not isinstance(overfit_monitor, str) or not overfit_monitor:
            raise ValueError(
                f"Invalid overfit_monitor value: {overfit_monitor!r} (must be a metric name)"
            )
        if not isinstance(log, bool):
            raise ValueError(f"Invalid log value: {log!r} (must be True or False)")
        self.reference_batches = reference_batches
        self.overfit_monitor = overfit_monitor
        self.log = log
        self.history: list[Decision] = []
        self._adapters: list[FrictionAdapter] = []
        self._pending_original: list[list[float] | None] | None = None
        self._best = BestWeights() if restore_best else None
        self._pending: Tensor | None = None  # losses of batches since the last optimizer step
        self._pending_batches = 0
        self._last_global_step = 0
        self._resumed_from: str | None = None  # the saved state's key, when settings changed

    # ------------------------------------------------------------------------ reading
    @property
    def mode(self) -> str:
        return self.controller.mode

    @property
    def stages(self) -> tuple[tuple[float | None, float], ...]:
        """The (goal, factor) pairs; the clock trigger's one stage is (None, factor)."""
        return self.controller.stages

    @property
    def at_step(self) -> int | None:
        """The clock trigger's step (None for a goal brake)."""
        return self.controller.at_step

    @property
    def reference_loss(self) -> float | None:
        """L₀ (None until measured)."""
        return self.controller.reference_loss

    @property
    def braked_step(self) -> int | None:
        """The global step at which the first stage fired (None before)."""
        return self.controller.braked_step

    @property
    def braked(self) -> bool:
        """Whether the friction is braked now."""
        return self.controller.braked

    @property
    def state_key(self) -> str:
        # Lightning's _generate_state_key format: instances with other stages coexist.
        if self.at_step is not None:
            key = dict(at_step=self.at_step, factor=self.stages[0][1])
        else:
            key = dict(mode=self.mode, stages=list(self.stages))
        return f"{type(self).__qualname__}{key!r}"

    # -------------------------------------------------------------------------- hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Checks that need the Trainer; each error ends with the fix."""
        if stage != "fit":
            return
        if self.controller.overfit_patience is not None and not trainer.limit_val_batches:
            raise ValueError(
                f"GoalBrake(overfit_patience={self.controller.overfit_patience}) watches the "
                f"validation loss, but the Trainer has limit_val_batches="
                f"{trainer.limit_val_batches!r}; set limit_val_batches > 0 or overfit_patience=None"
            )
        needs_reference = self.reference_loss is None and self.controller.needs_reference
        if (
            needs_reference
            and not getattr(pl_module, "automatic_optimization", True)
            and not callable(getattr(pl_module, "reference_loss", None))
        ):
            raise ValueError(
                "GoalBrake cannot measure the reference loss of a module with manual "
                "optimization (its training_step would update the weights); define "
                "reference_loss(batch) on the module or pass GoalBrake(reference_loss=<float>)"
            )

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Wrap every optimizer (an unsupported one fails here, before the first step)."""
        optimizers = list(trainer.optimizers)
        if not optimizers:
            raise ValueError(
                "GoalBrake found no optimizer; return a goalbrake.PHS (or a torch.optim.SGD "
                "with momentum) from configure_optimizers"
            )
        self._adapters = [friction_adapter(opt) for opt in optimizers]
        if self.goal_source is not None:
            self._event(trainer, f"GoalBrake: goal {self.stages[0][0]:.4g} from {self.goal_source}")

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        """Restore the pre-brake record after a resume, and measure L₀ on a fresh run."""
        self._pending, self._pending_batches = None, 0
        self._last_global_step = trainer.global_step
        if self._pending_original is not None:
            if len(self._pending_original) != len(self._adapters):
                raise ValueError(
                    f"Invalid GoalBrake state: {len(self._pending_original)} optimizers in the "
                    f"checkpoint, {len(self._adapters)} now (resume with the same optimizers)"
                )
            for adapter, original in zip(self._adapters, self._pending_original, strict=True):
                adapter.load_state_dict({"original": original})
            self._pending_original = None
        if self._resumed_from is not None:
            self._event(trainer, self._resumed_message(), level=logging.WARNING)
            self._resumed_from = None
        if self.controller.braked:
            factor = self.controller.factor
            if any([adapter.reconcile(factor) for adapter in self._adapters]):
                self._event(
                    trainer,
                    f"GoalBrake: the optimizer state did not carry the brake of step "
                    f"{self.braked_step}; braked it again (friction x{factor:g})",
                    level=logging.WARNING,
                )
        if self.reference_loss is None and self.controller.needs_reference:
            self.controller.set_reference(
                measure_reference_loss(trainer, pl_module, self.reference_batches)
            )

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Feed the step's loss; decide at checks; log the brake metrics."""
        loss = self._batch_loss(trainer, pl_module, outputs)
        if loss is None:
            return
        # One controller step per optimizer step: with gradient accumulation, the mean of
        # the accumulated batches' losses is fed once the optimizer has stepped.
        self._pending = loss if self._pending is None else self._pending + loss
        self._pending_batches += 1
        if trainer.global_step == self._last_global_step:
            return
        self._last_global_step = trainer.global_step
        if self._pending_batches > 1:
            loss = self._pending / self._pending_batches
        self._pending, self._pending_batches = None, 0
        controller = self.controller
        controller.observe(loss)
        if controller.step % controller.check_every_n_steps == 0:
            if trainer.world_size > 1:
                controller.sync_smoothing(lambda t: trainer.strategy.reduce(t, reduce_op="mean"))
            decisions = controller.evaluate(agree=_agree(trainer))
            self._act(trainer, pl_module, decisions)
        else:
            decisions = []
        if self.log and (decisions or _logs_now(trainer)):
            self._log_metrics(trainer, pl_module, write=bool(decisions) and not _logs_now(trainer))

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        """Feed the validation loss to the overfit trigger."""
        if self.controller.overfit_patience is None or trainer.sanity_checking:
            return
        if getattr(getattr(trainer, "state", None), "fn", "fit") != "fit":
            return  # a str enum: equal to its value
        metrics = trainer.callback_metrics
        value = metrics.get(self.overfit_monitor)
        if value is None:
            raise RuntimeError(
                f"GoalBrake's overfit trigger watches `{self.overfit_monitor}`, which was not "
                f"logged (logged: {', '.join(f'`{k}`' for k in metrics) or 'nothing'}); log it "
                "in validation_step or pass overfit_monitor=<one of those>"
            )
        value = torch.as_tensor(value, dtype=torch.float64).detach().clone()
        if trainer.world_size > 1:
            value = trainer.strategy.reduce(value.to(pl_module.device), reduce_op="mean")
        decisions = self.controller.observe_validation(float(value), agree=_agree(trainer))
        self._act(trainer, pl_module, decisions)

    # -------------------------------------------------------------------------- state
    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        """Resume with edited settings on top of the saved history (see docs/braking.md).

        Lightning finds a callback's state by its :attr:`state_key`, which holds the
        settings; a run resumed with another goal would find none, measure L₀ again on the
        trained weights and brake a second time. So when this instance's key is missing,
        the one GoalBrake state of the checkpoint that no other instance claims is loaded:
        L₀, the steps, the stages fired and the friction from before the first brake are
        kept, and the new settings apply to what has not fired yet.

        Raises:
            ValueError: several saved GoalBrake states could be this one's, or the saved
                state cannot take the new settings (another mode, smoothing or trigger, or
                more stages fired than the new settings have).
        """
        states = checkpoint.get("callbacks") or {}
        if self.state_key in states:
            return  # Lightning loads it with load_state_dict
        prefix = f"{type(self).__qualname__}{{"
        claimed = {getattr(cb, "state_key", None) for cb in getattr(trainer, "callbacks", ())}
        saved = [k for k in states if isinstance(k, str) and k.startswith(prefix)]
        unclaimed = [k for k in saved if k not in claimed]
        if not saved:
            return  # no GoalBrake wrote this checkpoint: a fresh start
        if len(unclaimed) != 1:
            raise ValueError(
                f"GoalBrake cannot tell which saved state is its own: {self.state_key} is not "
                f"in the checkpoint, which holds {saved}; resume with the settings of the run "
                "that wrote it"
            )
        self.load_state_dict(states[unclaimed[0]])
        self._resumed_from = unclaimed[0]

    def _resumed_message(self) -> str:
        history = (
            f"braked at step {self.braked_step}" if self.braked_step is not None else "no brake yet"
        )
        reference = "" if self.reference_loss is None else f"L₀ {self.reference_loss:.4g}, "
        return (
            f"GoalBrake: resumed the state of {self._resumed_from} ({reference}{history}); "
            f"{self.state_key} applies on top of it from step {self.controller.step}"
        )

    def state_dict(self) -> dict[str, Any]:
        """The controller's flat state, the pre-brake friction per optimizer and group, and
        the best weights (``restore_best`` only)."""
        state = self.controller.state_dict()
        if self._adapters:
            state["original"] = [adapter.original for adapter in self._adapters]
        else:
            state["original"] = self._pending_original
        if self._best is not None and self._best.saved:
            state["best_weights"] = self._best.state
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.controller.load_state_dict(state_dict)
        self._pending_original = state_dict.get("original")
        best = state_dict.get("best_weights")
        if self._best is not None and best is not None:
            self._best.state = {k: v.detach().to("cpu", copy=True) for k, v in best.items()}

    # ---------------------------------------------------------------------- internals
    @staticmethod
    def _batch_loss(trainer: Any, pl_module: Any, outputs: Any) -> Tensor | None:
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        automatic = getattr(pl_module, "automatic_optimization", True)
        if not isinstance(loss, Tensor):
            if automatic:
                return None  # training_step returned None: Lightning skipped this batch
            raise RuntimeError(
                "GoalBrake needs each batch's loss, but training_step returned "
                f"{type(outputs).__name__}; return the loss (a tensor, or a dict with 'loss')"
            )
        accumulate = getattr(trainer, "accumulate_grad_batches", 1)
        if automatic and accumulate != 1:
            loss = loss * accumulate  # Lightning hands out loss / accumulate_grad_batches
        return loss

    def _act(self, trainer: Any, pl_module: Any, decisions: list[Decision]) -> None:
        if not decisions:
            return
        apply_decisions(decisions, self._adapters, module=pl_module, best=self._best)
        for decision in decisions:
            self.history.append(decision)
            if isinstance(decision, Brake):
                self._event(
                    trainer,
                    f"GoalBrake: braked at step {decision.step} ({decision.reason}), "
                    f"friction x{decision.factor:g}",
                )
            elif isinstance(decision, Release):
                kick = f", momentum x{decision.kick:g}" if decision.kick != 1.0 else ""
                self._event(
                    trainer,
                    f"GoalBrake: released at step {decision.step} ({decision.reason}), "
                    f"friction restored{kick}",
                )
            elif isinstance(decision, RestoreBest):
                self._event(
                    trainer,
                    f"GoalBrake: restored the weights of step {decision.step} "
                    f"(smoothed loss {decision.loss:.4g})",
                )

    @staticmethod
    def _event(trainer: Any, message: str, level: int = logging.INFO) -> None:
        """A log line and a TensorBoard text on rank zero."""
        if not getattr(trainer, "is_global_zero", True):
            return
        _logger.log(level, message)
        for logger in getattr(trainer, "loggers", ()):
            add_text = getattr(getattr(logger, "experiment", None), "add_text", None)
            if callable(add_text):
                add_text("brake/events", message, global_step=trainer.global_step)

    def _log_metrics(self, trainer: Any, pl_module: Any, *, write: bool) -> None:
        """``pl_module.log`` the brake metrics; with ``write`` (a step that acted but is no
        logging step, where Lightning would drop them) also hand them to every logger."""
        controller = self.controller
        smoothed = controller.smoothed()
        if smoothed is None or (controller.reference_loss is None and controller.needs_reference):
            return
        friction = self._adapters[0].friction() if self._adapters else math.nan
        if isinstance(friction, Tensor):
            friction = friction.detach().clone()  # braking mutates it in place later
        values = (
            controller.target,
            smoothed,
            friction,
            float(controller.braked),
            controller.reference_loss,
        )
        metrics = {
            name: value
            for name, value in zip(self.METRICS, values, strict=True)
            if value is not None  # the clock trigger has no goal_loss
        }
        for name, value in metrics.items():
            pl_module.log(name, value, on_step=True, on_epoch=False, batch_size=1)
        if write and getattr(trainer, "is_global_zero", True):
            # The row Lightning gives this step's self.log values: its count of batches that
            # stepped before this one, global_step - 1 with one optimizer.
            step = trainer.global_step - 1
            floats = {name: float(value) for name, value in metrics.items()}
            for logger in getattr(trainer, "loggers", ()):
                logger.log_metrics(floats, step=step)

    def __repr__(self) -> str:
        if self.at_step is not None:
            trigger = f"at_step={self.at_step}, factor={self.stages[0][1]!r}"
        else:
            trigger = f"mode={self.mode!r}, stages={list(self.stages)!r}"
        return (
            f"{type(self).__name__}({trigger}, "
            f"reference_loss={self.reference_loss!r}, braked_step={self.braked_step!r})"
        )
