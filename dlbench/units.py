"""One unit of training (a tuning trial or a seed repeat) in its MLflow run: build, pretrain, resume from its
checkpoint, fit with per-epoch logging and system metrics, checkpoint, and save the final model.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from dlbench import checkpoints, leases, models, pretrain, spaces, train, transfer
from dlbench import tracking as T
from dlbench.spec import Experiment


@dataclasses.dataclass
class Unit:
    """A claimed unit: its MLflow run, whether it was taken over from a dead worker, and how to make a fresh run."""

    run_id: str
    taken_over: bool
    fresh_run: Callable[[str], str]  # (note) -> a new run for the unit, the old one ended; see `Trainer.start`


class Trainer:
    """Trains units of one experiment for one worker: data, tracker and checkpoints are shared by its units."""

    def __init__(self, exp: Experiment, data, tracker: T.Tracker, store: checkpoints.Store):
        self.exp = exp
        self.data = data
        self.tracker = tracker
        self.store = store
        self.transfer = transfer.Transfer(exp, tracker)  # freeze and init_from, applied by `builder`

    def start(self, unit: Unit) -> tuple[str, train.TrainState | None]:
        """Where a unit starts: (run id, state to resume from, or None for epoch 0).

        A unit taken over resumes from its checkpoint in the same run (tag `dlbench.resumed_from_epoch`). Without a
        usable checkpoint it starts again at epoch 0; if its run already holds epochs it gets a fresh run, so no
        run ever holds two values for one epoch, and the old run ends FAILED naming the new one.
        """
        if not unit.taken_over:
            return unit.run_id, None
        note = ""
        try:
            state = self.store.load(unit.run_id)
        except checkpoints.Unreadable as e:
            state, note = None, f"checkpoint not used ({e}); restarted from epoch 0"
            self.store.delete(unit.run_id)
        if state is not None:
            self.tracker.set_tags(unit.run_id, {T.TAG_RESUMED_FROM: state.epoch + 1, T.TAG_STATE: T.STATE_RUNNING})
            return unit.run_id, state
        run_id = unit.run_id
        if self.tracker.holds_history(run_id):
            run_id = unit.fresh_run(note or "no checkpoint to resume from")
        self.tracker.set_tags(run_id, {T.TAG_STATE: T.STATE_RUNNING, **({T.TAG_CHECKPOINT_NOTE: note} if note else {})})
        return run_id, None

    def builder(self, params: spaces.Params, seed: int, run_id: str, fresh: bool):
        """What `train.fit` calls (after seeding) to get the model: built, then pretrained or initialised from
        another arm's weights (`init_from`) when its params ask and the unit starts fresh (a resumed unit loads its
        trained weights instead), and its leading blocks frozen (`freeze`; dlbench.transfer).

        Pretraining losses go to the same MLflow run as `pretrain/layer_<i>/loss` (step = epoch), with
        `pretrain_seconds` and `pretrain_rows`; `train_seconds` stays the supervised training time alone.
        """
        epoch_logger = self.tracker.epoch_logger(run_id)

        def log(layer: int, epoch: int, logs: dict[str, float]) -> None:
            epoch_logger(epoch, {f"pretrain/layer_{layer}/{k}": v for k, v in logs.items()})

        def build():
            model = models.get(params.model_name).build(params.model, self.data)
            if fresh and pretrain.applies(params.model):
                done = pretrain.greedy_layerwise(model, params.model, pretrain.unlabeled_inputs(self.data),
                                                 params.train, seed=seed, hook=log)
                self.tracker.log_metrics(run_id, {"pretrain_seconds": done.seconds, "pretrain_rows": done.rows})
            return self.transfer.prepare(model, params.train, run_id, fresh)

        return build

    def fit(self, run_id: str, state: train.TrainState | None, params: spaces.Params, seed: int,
            hooks: Sequence[Callable] = (), test: bool = False,
            lease: leases.Heartbeat | None = None) -> train.FitResult:
        """Train the unit to the end of its epochs, checkpointing every `checkpoint_every` epochs.

        With checkpoints on, epoch metrics reach MLflow at each checkpoint (and at the end), never ahead of it: a
        resumed run then logs each epoch once. The checkpoint is deleted once the unit ends, however it ends, but
        for Ctrl-C (the next run resumes from it) and for a unit another worker took over (`lease`, checked at
        every epoch before anything is logged: the checkpoint is theirs now).
        """
        every = params.train.checkpoint_every
        logger = self.tracker.epoch_logger(run_id, flush_every=math.inf if every else T.EPOCH_FLUSH_SECONDS)
        if state is not None:  # epochs checkpointed but not yet in MLflow (killed between the two writes)
            for epoch in range(self.tracker.last_epoch(run_id) + 1, state.epoch + 1):
                logger(epoch, {k: v[epoch] for k, v in state.history.items() if len(v) > epoch})
            self.tracker.flush(run_id)

        def save(s: train.TrainState) -> None:
            if lease:
                lease.check(now=True)  # the checkpoint and the metrics are the unit holder's to write
            self.store.save(run_id, s)
            self.tracker.flush(run_id)

        guard = [lambda epoch, logs: lease.check()] if lease else []
        entry = models.get(params.model_name)
        evaluate = entry.evaluator(self.data) if entry.evaluator else None  # before training: it may train a judge
        try:
            with self.tracker.system_metrics(run_id, resume=state is not None):
                result = train.fit(self.builder(params, seed, run_id, fresh=state is None), self.data, params.train,
                                   epochs=self.exp.budget.epochs, seed=seed, monitor=self.exp.metric,
                                   hooks=[*guard, logger, *hooks], evaluate_test=test, resume=state,
                                   checkpoint=save if every else None, task=entry.task_for(self.data.task),
                                   loss=entry.loss(params.model), evaluate=evaluate)
        except leases.LeaseLost:
            raise
        except Exception:
            self.store.delete(run_id)
            raise
        self.store.delete(run_id)
        self.tracker.set_tags(run_id, {T.TAG_PRECISION: result.settings["precision"],
                                       T.TAG_DETERMINISM: result.settings["determinism"],
                                       T.TAG_JIT: result.settings["jit_compile"]})
        return result

    def log_pictures(self, run_id: str, model: Any, params: spaces.Params) -> None:
        """The model's pictures on its repeat run (`pictures/`; models.Entry.pictures): a VAE's samples from the
        prior, test inputs and their reconstructions, and for 2-D latents the test set in the latent space; a GAN's
        samples (images, or 2-D points over the real ones)."""
        pictures = models.get(params.model_name).pictures
        if pictures is None:
            return
        from dlbench import plots

        pics = pictures(model, self.data, params.model)
        with tempfile.TemporaryDirectory(prefix="dlbench-pictures-") as folder:
            titles = (("samples", "samples from the prior (decoder means)" if "latents" in pics else "generated samples"),
                      ("inputs", "test inputs"), ("reconstructions", "their reconstructions"))
            paths = [plots.image_grid(pics[k], Path(folder) / f"{k}.png", title) for k, title in titles
                     if pics.get(k) is not None]
            if pics.get("latents") is not None:
                paths.append(plots.latent_scatter(pics["latents"], pics["labels"], Path(folder) / "latent_space.png"))
            if pics.get("points") is not None:
                paths.append(plots.sample_scatter(pics["points"], pics["reference"], self.data.modes,
                                                  Path(folder) / "samples.png"))
            for path in paths:
                self.tracker.log_artifact(run_id, path, "pictures")

    def save_model(self, run_id: str, model: Any) -> None:
        """Log the model as `model/model.keras` on its run (loadable with keras.saving.load_model)."""
        with tempfile.TemporaryDirectory(prefix="dlbench-model-") as folder:
            path = Path(folder) / "model.keras"
            try:
                train.save_model(model, path)
            except Exception as e:  # noqa: BLE001 - a model Keras cannot serialise is noted, the run still counts
                self.tracker.set_tags(run_id, {T.TAG_MODEL_NOTE: f"not saved: {type(e).__name__}: {e}"[:500]})
                return
            self.tracker.log_artifact(run_id, path, "model")
