"""Adversarial training (Goodfellow et al. 2014): the GAN model whose custom `train_step` alternates discriminator
and generator updates, the losses, and the optimizer pair.

The losses and both objectives are written with keras.ops only. What differs by backend is how a gradient is
taken and applied, which Keras leaves to each backend's trainer: TensorFlow's GradientTape, `jax.grad` over
stateless calls (JAX, jit-compiled like Keras's own step) and autograd (PyTorch). All three run the same step:
  1. `d_steps` times: a fresh batch of noise, the discriminator's loss on the real batch and on (detached) fakes,
     one discriminator update;
  2. a fresh batch of noise, the generator's loss through the discriminator, one generator update (the
     discriminator's weights stay as they are).
Each network has its own copy of the configured optimizer (`PairedOptimizer`), so Adam's moments and step counts
and any learning-rate schedule are per network, as in Goodfellow et al.'s Algorithm 1.

Logged per epoch (and with `val_` on the validation split, where nothing is updated): `d_loss`, `g_loss`,
`d_real` and `d_fake` (the discriminator's mean probability that real and generated inputs are real), and `loss`
= d_loss + g_loss (watched for divergence only; it is no objective).
"""

from __future__ import annotations

import keras
from keras import ops

LOSSES = ("minimax", "non_saturating", "hinge")
LOGS = ("loss", "d_loss", "g_loss", "d_real", "d_fake")


def discriminator_loss(real, fake, kind: str, label_smoothing: float = 0.0):
    """The discriminator's loss on logits of real and generated inputs. Cross-entropy (minimax and
    non-saturating): -log D(x) - log(1 - D(G(z))), with one-sided label smoothing (Salimans et al. 2016) turning
    the real targets into 1 - label_smoothing. Hinge (Lim & Ye 2017; Miyato et al. 2018): relu(1 - D(x)) +
    relu(1 + D(G(z)))."""
    if kind == "hinge":
        return ops.mean(ops.relu(1.0 - real)) + ops.mean(ops.relu(1.0 + fake))
    target = 1.0 - label_smoothing
    real_term = target * ops.softplus(-real) + (1.0 - target) * ops.softplus(real)
    return ops.mean(real_term) + ops.mean(ops.softplus(fake))


def generator_loss(fake, kind: str):
    """The generator's loss on the discriminator's logits of its samples. minimax: log(1 - D(G(z))), which
    saturates when the discriminator rejects the samples confidently; non_saturating: -log D(G(z)) (Goodfellow et
    al.'s practical choice); hinge: -D(G(z))."""
    if kind == "minimax":
        return -ops.mean(ops.softplus(fake))
    if kind == "non_saturating":
        return ops.mean(ops.softplus(-fake))
    return -ops.mean(fake)


@keras.saving.register_keras_serializable(package="dlbench")
class PairedOptimizer(keras.optimizers.Optimizer):
    """Two copies of one optimizer: `generator` for the generator's variables, `discriminator` for the
    discriminator's. `learning_rate` and `iterations` are the generator's (a schedule or a plateau callback sets
    both); `apply` sends each gradient to the copy that owns its variable."""

    def __init__(self, generator, discriminator=None, split=None, name="paired", **kwargs):
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.generator = keras.optimizers.get(generator)
        self.discriminator = discriminator if discriminator is not None else \
            self.generator.__class__.from_config(self.generator.get_config())
        self._split = split  # () -> (generator variables, discriminator variables); a function is not tracked

    def build(self, var_list):
        g_vars, d_vars = self._split()
        self.generator.build(g_vars)
        self.discriminator.build(d_vars)
        super().build(var_list)

    @property
    def variables(self):
        return self._variables + self.generator.variables + self.discriminator.variables

    def parts(self, optimizer_variables):
        """The optimizer variables' values split as (own, generator's, discriminator's)."""
        own, g = len(self._variables), len(self.generator.variables)
        return optimizer_variables[:own], optimizer_variables[own:own + g], optimizer_variables[own + g:]

    def apply(self, grads, trainable_variables=None):
        g_ids = {id(v) for v in self._split()[0]}
        pairs = list(zip(grads, trainable_variables if trainable_variables is not None else self._trainable_variables))
        for opt, mine in ((self.generator, [p for p in pairs if id(p[1]) in g_ids]),
                          (self.discriminator, [p for p in pairs if id(p[1]) not in g_ids])):
            if mine:
                opt.apply([g for g, _ in mine], [v for _, v in mine])

    @property
    def learning_rate(self):
        return self.generator.learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if hasattr(self, "discriminator"):  # the base class sets it before the copies exist
            self.generator.learning_rate = value
            self.discriminator.learning_rate = value

    @property
    def iterations(self):
        return self.generator.iterations

    def get_config(self):
        return {"name": self.name, "generator": keras.optimizers.serialize(self.generator),
                "discriminator": keras.optimizers.serialize(self.discriminator)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(keras.optimizers.deserialize(config.pop("generator")),
                   keras.optimizers.deserialize(config.pop("discriminator")), **config)


@keras.saving.register_keras_serializable(package="dlbench")
class GAN(keras.Model):
    """A generator of samples from noise and a discriminator of real vs generated inputs, trained adversarially.
    Called on inputs, it returns the discriminator's logits."""

    def __init__(self, generator, discriminator, latent_dim: int, gan_loss: str = "non_saturating",
                 label_smoothing: float = 0.0, d_steps: int = 1, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if gan_loss not in LOSSES:
            raise ValueError(f"gan_loss must be one of {', '.join(LOSSES)}; got {gan_loss!r}")
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.gan_loss, self.label_smoothing, self.d_steps = latent_dim, gan_loss, label_smoothing, d_steps
        self.seed = seed
        self.noise = keras.random.SeedGenerator(seed)
        self.trackers = [keras.metrics.Mean(name=name) for name in LOGS]
        self.built = True  # both networks are built models already

    def call(self, inputs, training=False):
        return self.discriminator(inputs, training=training)

    @property
    def metrics(self):
        return list(self.trackers)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Compile with a copy of `optimizer` per network; `loss` and `metrics` are the GAN's own (ignored)."""
        if keras.mixed_precision.dtype_policy().name == "mixed_float16":
            raise ValueError("the GAN trains in float32 or mixed_bfloat16, not mixed_float16 (its two updates per "
                             "step take no loss scaling); set precision = \"mixed_bfloat16\" or \"float32\"")
        split = lambda: (self.generator.trainable_variables, self.discriminator.trainable_variables)  # noqa: E731
        super().compile(optimizer=PairedOptimizer(optimizer, split=split), **kwargs)

    # --- the objectives (keras.ops; every backend) ---

    def _noise(self, n):
        return keras.random.normal((n, self.latent_dim), seed=self.noise)

    def d_objective(self, x, training=True):
        fake = ops.stop_gradient(self.generator(self._noise(ops.shape(x)[0]), training=training))
        real_logits = ops.reshape(self.discriminator(x, training=training), (-1,))
        fake_logits = ops.reshape(self.discriminator(fake, training=training), (-1,))
        loss = discriminator_loss(real_logits, fake_logits, self.gan_loss, self.label_smoothing)
        return loss, (ops.mean(ops.sigmoid(real_logits)), ops.mean(ops.sigmoid(fake_logits)))

    def g_objective(self, n, training=True):
        fake_logits = ops.reshape(self.discriminator(self.generator(self._noise(n), training=training),
                                                     training=training), (-1,))
        return generator_loss(fake_logits, self.gan_loss)

    def _values(self, d_loss, g_loss, d_real, d_fake):
        return dict(zip(LOGS, (d_loss + g_loss, d_loss, g_loss, d_real, d_fake)))

    # --- the steps, by backend ---

    def train_step(self, *args):
        step = getattr(self, f"_{keras.backend.backend()}_train_step", None)
        if step is None:
            raise NotImplementedError(f"no GAN train step for the {keras.backend.backend()} backend")
        return step(*args)

    def test_step(self, *args):
        if keras.backend.backend() == "jax":
            (trainable, non_trainable, metrics_vars), data = args
            values, non_trainable = self._stateless(trainable, non_trainable, lambda: self._evaluate(data))
            logs, metrics_vars = self._stateless_metrics(metrics_vars, values)
            return logs, (trainable, non_trainable, metrics_vars)
        return self._update_trackers(self._evaluate(args[0]))

    def _evaluate(self, data):
        x = _inputs(data)
        d_loss, (d_real, d_fake) = self.d_objective(x, training=False)
        return self._values(d_loss, self.g_objective(ops.shape(x)[0], training=False), d_real, d_fake)

    def _update_trackers(self, values):
        for tracker in self.trackers:
            tracker.update_state(values[tracker.name])
        return {t.name: t.result() for t in self.trackers}

    def _tensorflow_train_step(self, data):
        import tensorflow as tf

        x = _inputs(data)
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables
        for _ in range(self.d_steps):
            with tf.GradientTape() as tape:
                d_loss, (d_real, d_fake) = self.d_objective(x)
            self.optimizer.discriminator.apply(tape.gradient(d_loss, d_vars), d_vars)
        with tf.GradientTape() as tape:
            g_loss = self.g_objective(tf.shape(x)[0])
        self.optimizer.generator.apply(tape.gradient(g_loss, g_vars), g_vars)
        return self._update_trackers(self._values(d_loss, g_loss, d_real, d_fake))

    def _torch_train_step(self, data):
        import torch

        x = _inputs(data)
        g_vars, d_vars = self.generator.trainable_variables, self.discriminator.trainable_variables

        def step(loss, variables, optimizer):
            self.zero_grad()
            loss.backward()
            grads = [v.value.grad for v in variables]
            with torch.no_grad():
                optimizer.apply(grads, variables)

        for _ in range(self.d_steps):
            d_loss, (d_real, d_fake) = self.d_objective(x)
            step(d_loss, d_vars, self.optimizer.discriminator)
        g_loss = self.g_objective(x.shape[0])
        step(g_loss, g_vars, self.optimizer.generator)
        return self._update_trackers(self._values(d_loss.detach(), g_loss.detach(), d_real.detach(), d_fake.detach()))

    def _stateless(self, trainable, non_trainable, fn):
        """fn() with the model's variables set to these values: (its result, the new non-trainable values)."""
        mapping = list(zip(self.trainable_variables, trainable)) + list(zip(self.non_trainable_variables, non_trainable))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            out = fn()
        return out, [scope.get_current_value(v) for v in self.non_trainable_variables]

    def _stateless_metrics(self, metrics_vars, values):
        logs, new = {}, []
        for tracker in self.trackers:
            mine = metrics_vars[len(new):len(new) + len(tracker.variables)]
            mine = tracker.stateless_update_state(mine, values[tracker.name])
            logs[tracker.name] = tracker.stateless_result(mine)
            new += mine
        return logs, new

    def _jax_train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_vars, metrics_vars = state
        x = _inputs(data)
        own, g_opt, d_opt = self.optimizer.parts(optimizer_vars)
        position = {id(v): i for i, v in enumerate(self.trainable_variables)}
        g_at = [position[id(v)] for v in self.generator.trainable_variables]
        d_at = [position[id(v)] for v in self.discriminator.trainable_variables]

        def update(at, optimizer, opt_vars, objective, trainable, non_trainable):
            def loss_fn(part, non_trainable):
                values = list(trainable)
                for i, v in zip(at, part):
                    values[i] = v
                (loss, aux), non_trainable = self._stateless(values, non_trainable, objective)
                return loss, (aux, non_trainable)

            part = [trainable[i] for i in at]
            (loss, (aux, non_trainable)), grads = jax.value_and_grad(loss_fn, has_aux=True)(part, non_trainable)
            part, opt_vars = optimizer.stateless_apply(opt_vars, grads, part)
            trainable = list(trainable)
            for i, v in zip(at, part):
                trainable[i] = v
            return loss, aux, trainable, non_trainable, opt_vars

        for _ in range(self.d_steps):
            d_loss, (d_real, d_fake), trainable, non_trainable, d_opt = update(
                d_at, self.optimizer.discriminator, d_opt, lambda: self.d_objective(x), trainable, non_trainable)
        g_loss, _, trainable, non_trainable, g_opt = update(
            g_at, self.optimizer.generator, g_opt, lambda: (self.g_objective(x.shape[0]), None), trainable,
            non_trainable)
        logs, metrics_vars = self._stateless_metrics(metrics_vars, self._values(d_loss, g_loss, d_real, d_fake))
        return logs, (trainable, non_trainable, [*own, *g_opt, *d_opt], metrics_vars)

    def get_config(self):
        return {**super().get_config(), "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "latent_dim": self.latent_dim, "gan_loss": self.gan_loss, "label_smoothing": self.label_smoothing,
                "d_steps": self.d_steps, "seed": self.seed}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for part in ("generator", "discriminator"):
            config[part] = keras.saving.deserialize_keras_object(config[part], custom_objects=custom_objects)
        return cls(**config)


def _inputs(data):
    """The real batch of an (inputs, targets) pair or of bare inputs."""
    return keras.utils.unpack_x_y_sample_weight(data)[0]
