"""Registry of model builders: name -> (build function, HParams dataclass, description, task, loss, accepts)."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from dlbench.models import (applications, autoencoder, cnn, conv_autoencoder, gan, inception, linear, mlp, mobilenet,
                            resnet, rnn, tcn, transformer, vae, vgg)

__all__ = ["Entry", "get", "names", "register"]


def _task_loss(hp: Any) -> None:
    """The default of `Entry.loss`: the task's own loss (train.TASKS), shaped by the trainer's `loss` switches."""
    return None


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[Any, Any], Any]  # (HParams, DatasetInfo) -> keras.Model
    hparams: type
    description: str
    # What the model is trained to do: "classification" (supervised: it fits the dataset's own task and targets,
    # one of `tasks`), "reconstruction" (targets are the inputs, whatever the dataset) or "generative" (a VAE:
    # fitted to its inputs on the negative ELBO) or "adversarial" (a GAN: fitted to its inputs by its own train
    # step). With the dataset's task it fixes the metrics a spec may name
    # (`task_for`).
    task: str = "classification"
    # The dataset tasks (data.DATASET_TASKS) a supervised model can fit; checked with the spec.
    tasks: tuple[str, ...] = ("classification", "regression")
    # Whether the model takes token inputs (a dataset with vocab > 0) through an embedding of its own.
    tokens: bool = False
    # The Keras loss for a model's hyperparameters (a name or a keras.losses.Loss); None: the task's default
    # (train.TASKS).
    loss: Callable[[Any], Any] = _task_loss
    # Why the model cannot take a dataset's inputs of this shape (naming the dataset option that fixes it), or
    # None when it can; checked with the spec, before anything runs.
    accepts: Callable[[tuple[int, ...]], str | None] = lambda input_shape: None
    # The same for a model whose hyperparameters decide it (HParams, input shape) -> reason or None; checked with
    # the spec for every combination of the arm's values.
    fits: Callable[[Any, tuple[int, ...]], str | None] = lambda hp, input_shape: None
    # What a trained model shows a user, as arrays (model, DatasetInfo, HParams) -> {name: array or None}: logged
    # as figures on each repeat run (units.Trainer.log_pictures); None: nothing to show.
    pictures: Callable[[Any, Any, Any], dict] | None = None
    # Metrics the model logs beyond its task's (data.TASK_METRICS) -> None where a dataset (DatasetInfo) allows
    # them, else why not; checked with the spec's metric.
    metrics_on: Callable[[Any], dict[str, str | None]] = lambda info: {}
    # For those metrics: DatasetInfo -> (model, "val" or "test") -> {name: value}, computed after every epoch and
    # on testing (train.fit's `evaluate`); None: none.
    evaluator: Callable[[Any], Callable] | None = None
    # Where a plugin comes from ("module:function (path)") and the sha256 of its source (part of the spec hash);
    # empty for the built-ins.
    source: str = ""
    digest: str = ""

    def task_for(self, dataset_task: str) -> str:
        """The task the model trains for on a dataset of `dataset_task`: that task, or the model's own
        unsupervised one ("reconstruction", "generative", "adversarial")."""
        return self.task if self.task in UNSUPERVISED else dataset_task

    @property
    def own_loss(self) -> bool:
        """Whether the model is trained with a loss of its own (the perceptron's hinge, the autoencoder's
        reconstruction loss), which the trainer's `loss` and `label_smoothing` switches do not touch."""
        return self.loss is not _task_loss


UNSUPERVISED = ("reconstruction", "generative", "adversarial")  # the tasks a model brings whatever the dataset's
_MODELS: dict[str, Entry] = {}


def register(entry: Entry, replace: bool = False) -> None:
    """Add a model (plugins go through dlbench.plugins, which checks them first); `replace` swaps in a new
    version of a plugin whose source changed."""
    if entry.name in _MODELS and not replace:
        raise KeyError(f"The model name {entry.name!r} was already registered.")
    _MODELS[entry.name] = entry


register(Entry("mlp", mlp.build, mlp.HParams, mlp.DESCRIPTION))
register(Entry("autoencoder", autoencoder.build, autoencoder.HParams, autoencoder.DESCRIPTION,
                task="reconstruction", loss=lambda hp: hp.loss, tasks=("classification", "tagging", "regression")))
register(Entry("conv_autoencoder", conv_autoencoder.build, conv_autoencoder.HParams, conv_autoencoder.DESCRIPTION,
                task="reconstruction", loss=lambda hp: hp.loss, tasks=("classification", "tagging", "regression"),
                accepts=conv_autoencoder.accepts))
register(Entry("vae", vae.build, vae.HParams, vae.DESCRIPTION, task="generative", loss=vae.loss,
                tasks=("classification", "tagging", "regression"), fits=vae.fits, pictures=vae.pictures))
register(Entry("gan", gan.build, gan.HParams, gan.DESCRIPTION, task="adversarial", loss=lambda hp: hp.gan_loss,
                tasks=("classification", "tagging", "regression"), fits=gan.fits, pictures=gan.pictures,
                metrics_on=gan.metrics_on, evaluator=gan.evaluator))
register(Entry("logistic", linear.build_logistic, linear.LogisticHParams, linear.LOGISTIC_DESCRIPTION,
                tasks=("classification",)))
register(Entry("perceptron", linear.build_perceptron, linear.PerceptronHParams, linear.PERCEPTRON_DESCRIPTION,
                loss=linear.perceptron_loss, tasks=("classification",)))
register(Entry("cnn", cnn.build, cnn.HParams, cnn.DESCRIPTION, accepts=cnn.accepts))
register(Entry("vgg", vgg.build, vgg.HParams, vgg.DESCRIPTION, accepts=vgg.accepts))
register(Entry("resnet", resnet.build, resnet.HParams, resnet.DESCRIPTION, accepts=resnet.accepts))
register(Entry("mobilenet", mobilenet.build, mobilenet.HParams, mobilenet.DESCRIPTION, accepts=mobilenet.accepts))
register(Entry("inception", inception.build, inception.HParams, inception.DESCRIPTION, accepts=inception.accepts))
register(Entry("resnet50", applications.build_resnet50, applications.ResNet50HParams,
                applications.RESNET50_DESCRIPTION, accepts=applications.accepts_resnet50, tasks=("classification",)))
register(Entry("mobilenet_v2", applications.build_mobilenet_v2, applications.MobileNetV2HParams,
                applications.MOBILENET_V2_DESCRIPTION, accepts=applications.accepts_mobilenet_v2, tasks=("classification",)))
register(Entry("inception_v3", applications.build_inception_v3, applications.InceptionV3HParams,
                applications.INCEPTION_V3_DESCRIPTION, accepts=applications.accepts_inception_v3, tasks=("classification",)))

register(Entry("rnn", rnn.build, rnn.HParams, rnn.DESCRIPTION, accepts=rnn.accepts,
                tasks=("classification", "tagging", "regression"), tokens=True))
register(Entry("tcn", tcn.build, tcn.HParams, tcn.DESCRIPTION, accepts=tcn.accepts,
                tasks=("classification", "tagging", "regression"), tokens=True))
register(Entry("transformer", transformer.build, transformer.HParams, transformer.DESCRIPTION,
                accepts=transformer.accepts, tasks=("classification", "tagging", "regression"), tokens=True))


def names() -> list[str]:
    return sorted(_MODELS)


def get(name: str) -> Entry:
    try:
        return _MODELS[name]
    except KeyError:
        raise ValueError(f"Unrecognized model: {name!r}; known models: {', '.join(names())}") from None
