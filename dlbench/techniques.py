"""The technique catalogue: every switch a spec can set to ablate a technique, what it does, its values and default,
and the builders it applies to (`dlbench list techniques`). Read from the HParams dataclasses themselves, so the
catalogue cannot drift from what the validator accepts.
"""

from __future__ import annotations

import dataclasses

# switch -> what it does. Model switches are fields of a builder's HParams (one implementation in
# dlbench.models.blocks), trainer switches fields of TrainHParams (dlbench.train, dlbench.recipe), data switches
# dataset options every dataset takes.
MODEL = {
    "activation": "hidden units' nonlinearity",
    "negative_slope": "leaky_relu's slope for negative inputs",
    "init": "initial weights of every kernel",
    "batch_norm": "batch normalisation in every hidden block",
    "bn_position": "batch norm before or after the activation",
    "dropout": "dropout rate after every hidden block",
    "input_dropout": "fraction of inputs dropped while training",
    "input_noise": "std of Gaussian noise added to inputs while training",
    "l1": "L1 penalty on every kernel",
    "l2": "L2 penalty on every kernel",
    "max_norm": "max L2 norm of each hidden unit's incoming weights (0 = off)",
    "augment": "image flips/shifts while training",
}
TRAINER = {
    "optimizer": "the optimizer",
    "learning_rate": "base learning rate",
    "momentum": "momentum of momentum and nesterov",
    "batch_size": "examples per step",
    "weight_decay": "decoupled weight decay (adamw; SGDW for sgd/momentum/nesterov)",
    "lr_schedule": "learning rate over training",
    "warmup_epochs": "linear warm-up (any schedule but plateau)",
    "lr_decay": "factor of the step, exponential and plateau schedules",
    "lr_step_epochs": "step size of step/exponential; patience of plateau",
    "clip_norm": "global gradient-norm clipping (0 = off)",
    "loss": "softmax classifiers' loss",
    "label_smoothing": "smoothing of the one-hot targets",
    "early_stopping": "patience in epochs (0 = off)",
    "select": "weights tested: best validation epoch's or the last",
    "grad_norm_every": "epochs between grad_norm/<layer> logs (0 = off; auto: at most 5% extra compute)",
    "freeze": "leading blocks (layers with weights) kept fixed; all_but_head trains the output layer only",
    "init_from": "initial weights: the best seed repeat of an arm, or \"<experiment>/<arm>\" of a finished run",
}
DATA = {"label_noise": "fraction of training labels made wrong (val/test clean)"}


@dataclasses.dataclass(frozen=True)
class Technique:
    name: str
    where: str  # "model", "trainer" or "data"
    what: str
    allowed: str
    default: str
    applies_to: tuple[str, ...]  # builders (model, trainer) or datasets (data)


def _toml(value) -> str:
    """A default as a spec would write it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "unset"
    return f'"{value}"' if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _acts(cls: type, name: str) -> bool:
    """Whether builder HParams `cls` honours switch `name`: False when it refuses every value but the default
    (a recurrent network refuses image augmentation, a Transformer batch norm)."""
    import typing

    from dlbench.models.refusals import Refused

    default = getattr(cls(), name)
    annotation = typing.get_type_hints(cls, include_extras=True)[name]
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if annotation is bool:
        others = [not default]
    elif typing.get_origin(annotation) is typing.Literal:
        others = [v for v in typing.get_args(annotation) if v != default]
    else:  # a number: one allowed value besides the default ([0, 1) switches and unbounded ones alike)
        others = [0.5 if default == 0 else default / 2]
    for value in others:
        try:
            cls(**{name: value})
            return True
        except Refused as e:
            if e.field != name:
                return True  # refused for another reason: this switch itself acts
        except ValueError:
            return True
    return False


def catalogue() -> list[Technique]:
    """Every technique switch, model switches first, then the trainer's, then the data's."""
    from dlbench import data, fields, models, spaces
    from dlbench.train import TrainHParams

    rows: list[Technique] = []
    entries = [models.get(n) for n in models.names()]
    for name, what in MODEL.items():
        owners = [e for e in entries if name in _fields(e.hparams) and _acts(e.hparams, name)]
        defaults = " or ".join(sorted({_toml(getattr(e.hparams(), name)) for e in owners}))  # a family may differ
        rows.append(Technique(name, "model", what, fields.allowed_values(fields.field_types(owners[0].hparams)[name]),
                              defaults, tuple(e.name for e in owners)))
    train_types, defaults = fields.field_types(TrainHParams), TrainHParams()
    for name, what in TRAINER.items():
        users = [e.name for e in entries if name not in spaces.CLASSIFIER_LOSS_SWITCHES
                 or (e.task == "classification" and not e.own_loss and name not in _fields(e.hparams))]
        rows.append(Technique(name, "trainer", what, fields.allowed_values(train_types[name]),
                              _toml(getattr(defaults, name)), tuple(users)))
    for name, what in DATA.items():
        users = [n for n in data.names() if name in _fields(data.get(n).options)]
        options = data.get(users[0]).options
        rows.append(Technique(name, "data", what, fields.allowed_values(fields.field_types(options)[name]),
                              _toml(getattr(options(), name)), tuple(users)))
    return rows


def table() -> str:
    """The catalogue as aligned text: switch, where, values, default, what it does, what it applies to."""
    from dlbench import data, models

    every_model, every_dataset = set(models.names()), set(data.names())
    lines = []
    for t in catalogue():
        every = every_dataset if t.where == "data" else every_model
        applies = f"every {'dataset' if t.where == 'data' else 'model'}" if set(t.applies_to) == every \
            else ", ".join(t.applies_to)
        lines.append(f"  {t.name:<16}{t.where:<8}{t.what}\n  {'':<24}values: {t.allowed}; default {t.default}; "
                     f"applies to: {applies}")
    return "\n".join(lines)
