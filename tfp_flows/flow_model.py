"""`FlowModel`: any TFP distribution as a Keras 3 model trained by maximum likelihood."""

from __future__ import annotations

import inspect
import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import conditioning, context_encoders, data_checks
from tfp_flows.bijectors.batch_norm import batch_norm_training
from tfp_flows.input_checks import InputChecks
from tfp_flows.nets import made
from tfp_flows.types import ShapeLike, TensorLike
from tfp_flows.variable_discovery import as_keras_weight, find_trainables, underlying_tf_variable

tfb = tfp.bijectors


class NonFiniteLossWarning(RuntimeWarning):
    """Training met a non-finite loss or gradient and stopped."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit()` at the first batch whose loss, gradient or update was not finite.

    `FlowModel.train_step` never keeps a non-finite update: a step whose loss is not finite,
    or whose update leaves any weight or optimizer variable non-finite (a NaN gradient, a NaN
    learning rate, Adam with epsilon=0 on a zero gradient), is undone inside the compiled
    step, so the weights and the optimizer state at the stop are those of the last finite
    step. This callback only reports and stops; `FlowModel.fit` adds it by itself. The
    details stay in `model.nonfinite_report`.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        report = (f"non-finite loss, gradient or update in epoch {self._epoch + 1}, batch "
                  f"{batch + 1} (counting batches from 1 within the epoch); that update was "
                  f"undone and training stopped. The model keeps the weights (and optimizer "
                  f"state) of the last finite step.")
        self.model.nonfinite_report = report
        self.model.stop_training = True
        warnings.warn(report, NonFiniteLossWarning, stacklevel=2)


class _ExampleMean(keras.metrics.Metric):
    """A mean over examples kept as (sum of values, sum of weights), both in float64.

    `update_state(total, count)` adds one batch's sums, so the result is the (weighted) mean
    over every example seen, whatever the batch sizes, and not a mean of batch means.
    """

    def __init__(self, name):
        super().__init__(name=name, dtype="float64")
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, total, count):
        self.total.assign_add(tf.cast(total, self.dtype))
        self.count.assign_add(tf.cast(count, self.dtype))

    def result(self):
        return tf.math.divide_no_nan(self.total, self.count)


def flow_bijector(distribution):
    """The bijector of a flow (a `tfd.TransformedDistribution` of a base), else None.

    TFP builds a private `_TransformedDistribution` type (not an instance of
    tfd.TransformedDistribution) when the bijector holds Keras layers, as every zoo model's
    does, so this looks for the bijector instead of checking the class.
    """
    bijector = getattr(distribution, "bijector", None)
    return bijector if isinstance(bijector, tfb.Bijector) else None


def _multi_worker(strategy):
    """True under a MultiWorkerMirroredStrategy whose cluster has more than one worker."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and strategy.extended._in_multi_worker_mode())


@keras.saving.register_keras_serializable(package="tfp_flows")
class FlowModel(InputChecks, keras.Model):
    """A Keras 3 model around a TFP distribution, trained by maximum likelihood.

    ```python
    model = tfp_flows.FlowModel(dist)               # dist: any tfd.Distribution
    model.compile(optimizer=keras.optimizers.Adam(1e-3))   # no loss: NLL is the loss
    model.fit(x_train, epochs=20, batch_size=256, validation_data=x_val)
    model.log_prob(x); model.sample(1000, seed=1); model.predict(x)  # log-probabilities
    ```

    What it trains: every trainable parameter the distribution holds, in any of the forms
    TFP allows: Keras 3 layers (our conditioners), `keras.Variable`s, raw `tf.Variable`s and
    `tfp.util.TransformedVariable`s, and tf_keras layers such as TFP's own
    `tfb.AutoregressiveNetwork`. Variable constraints (TFP's MADE masks are constraints) are
    applied after every update, so such a MAF stays autoregressive. Freezing: set
    `layer.trainable = False` on a conditioner layer, `model.trainable = False`, or call
    `model.freeze(part)` (a layer, bijector, `tf.Variable` or `TransformedVariable`;
    `unfreeze(part)` undoes it); a `tf.Variable(..., trainable=False)` is never trained.
    `fit()` retraces when the set of trainable weights changed, and warns when it is empty.
    `summary()` adds a row per TFP object holding `tf.Variable`s (a bijector's parameters).

    Training: the loss is the mean negative log-likelihood in nats per example (`loss`,
    and `nll` without regularisation losses); with `bits_per_dim=True` the metric
    `bits_per_dim` = nll / (D ln 2) is reported too. These are sums over examples divided by
    the number of examples (not means of batch means): `evaluate(x)` equals
    `-mean(model.log_prob(x))` up to float rounding for any batch size. `sample_weight`
    (one finite weight >= 0 per row, in `fit` and `evaluate`; checked like the data) makes
    them sum(w * nll) / sum(w), and a fit with integer weights equals a fit on rows repeated
    that many times; `validation_data=(x_val, None, w_val)` (`(context, x, w)` when
    conditional), and a `tf.data` set of `(x, w)` (`(context, x, w)`) pairs carry weights
    too. `compile(metrics=[...])` takes `keras.metrics.Metric` instances fed the
    per-example log-probabilities, e.g. `keras.metrics.Mean(name="mean_log_prob")`;
    supervised metrics ("mae", ...) are refused, and so are a non-finite or negative
    learning rate. An update that leaves any weight or optimizer variable non-finite (a NaN
    loss or gradient, a NaN learning rate, Adam with epsilon=0 on a zero gradient) is undone
    inside the compiled step and `fit()` stops with a warning naming the epoch and batch;
    the weights and optimizer state are those of the last finite step.

    Several devices: build and compile under a `tf.distribute` strategy's scope
    (`MirroredStrategy`, `MultiWorkerMirroredStrategy`, `OneDeviceStrategy`); each step's
    gradient is that of the mean loss over the examples of the global batch, as on one
    device, also when the last batch leaves a replica without rows. Reproducibility: call
    `keras.utils.set_random_seed(s)` before building (bitwise-equal runs on CPU); on GPUs also
    `tf.config.experimental.enable_op_determinism()`, a process-wide switch left to the user.

    Data: `fit(x)`, `evaluate(x)`, `predict(x)` take the data alone (no targets), as NumPy
    arrays, tensors or a `tf.data.Dataset` yielding batches of events. Arrays are checked
    before anything runs: non-floating dtypes, a wrong event shape and NaN/Inf (with the
    offending rows) raise `tfp_flows.FlowDataError`. Floating data is cast to the model's
    dtype (that of the distribution).

    Conditional flows p(x | context): pass `context_shape` and build the flow's
    conditioners with a context (`nets.MADE(..., context_size=k)`, ...). Then the Keras
    inputs are the contexts and the targets are the data: `fit(context, x)`,
    `evaluate(context, x)`, `predict((context, x))` -> log p(x | context), a `tf.data`
    set yields (context, x) pairs; `log_prob(x, context)`; `sample(n, context)` draws n
    samples per context row, shape [n, batch, *event_shape]. The context reaches every
    conditional part of the chain through `tfp_flows.conditioning.context_kwargs`.

    Data in its own units: a flow whose chain has a `tfp_flows.bijectors.Standardize` at
    its data end (every vector zoo model, `standardize=True`) is fitted to the training data
    by `model.adapt(x_train)` (or `adapt(x_train, context_train)`, which also standardises
    the contexts), before `fit()`. The networks then see standardised values while
    `log_prob`, `sample`, saved files and exports stay in data units. `fit()` warns once when
    the data are far from standardised and the standardisation is not fitted yet, and
    refuses rows outside the bounds of a `tfp_flows.bijectors.Bounded` data end.

    Args:
      distribution: a `tfd.Distribution` with a fully defined event shape (for a
        conditional flow, a `tfd.TransformedDistribution`).
      context_shape: shape of one context, e.g. [k]; None for an unconditional flow.
      bits_per_dim: also report NLL in bits per dimension.
      name: Keras model name.
      context_standardizer: for a conditional flow, a `tfp_flows.bijectors.Standardize`
        over the context shape (e.g. `Standardize.identity(k)`); the conditioners then see
        (context - loc) / scale, and `adapt(x, context)` fits loc and scale. The zoo's
        conditional builders add one (standardize=True).
      context_encoder: for a conditional flow, a Keras layer or model (an MLP, a CNN over
        images, a set or sequence network) applied to the raw context first: the flow models
        p(x | context_encoder(c)), and `fit(c, x)` trains both jointly. `context_shape` is
        then the shape of one raw input (read off the encoder's `keras.Input` if omitted);
        `log_prob`, `sample`, `distribution_at`, saved files and exports all take raw
        inputs. Build the conditioners with `context_size` = the encoder's output width.
    """

    def __init__(self, distribution: tfp.distributions.Distribution, *,
                 context_shape: ShapeLike | None = None, bits_per_dim: bool = False,
                 name: str | None = None,
                 context_standardizer: tfp.bijectors.Bijector | None = None,
                 context_encoder: keras.layers.Layer | None = None, **kwargs) -> None:
        policy = keras.config.dtype_policy()
        if policy.compute_dtype != policy.variable_dtype:
            raise ValueError(
                f"Keras' global dtype policy is {policy.name!r}: mixed precision is not supported "
                "by FlowModel, because log-determinants and log-densities lose too much in "
                "16-bit floats. Use keras.config.set_dtype_policy('float32') (or 'float64').")
        dtype = tf.as_dtype(distribution.dtype)
        kwargs.setdefault("dtype", dtype.name)
        super().__init__(name=name, **kwargs)
        event_shape = tf.TensorShape(distribution.event_shape)
        if not event_shape.is_fully_defined():
            raise ValueError(f"FlowModel needs a distribution with a fully defined event shape; "
                             f"got {event_shape}.")
        self._distribution = distribution
        self._event_shape = event_shape
        self._flow_dtype = dtype
        self.bits_per_dim = bool(bits_per_dim)
        self.nonfinite_report = None
        if context_encoder is not None:
            context_shape = context_encoders.encoder_input_shape(context_encoder, context_shape)
            self._encoded_shape = context_encoders.check_encoder_output(
                context_encoder, context_shape, dtype)
        self._context_encoder = context_encoder
        self._context_shape = None if context_shape is None else tf.TensorShape(context_shape)
        self._routing = self._context_routing(distribution)
        if context_standardizer is not None and self._routing is None:
            raise ValueError("context_standardizer was given to an unconditional FlowModel; "
                             "pass it only with context_shape.")
        self._context_standardizer = context_standardizer
        self._build_distribution()
        self._collect_trainables()
        self._loss_mean = _ExampleMean("loss")
        self._nll_mean = _ExampleMean("nll")
        self._bpd_mean = _ExampleMean("bits_per_dim") if bits_per_dim else None
        self._user_metrics = []
        self._frozen_ids = set()  # ids of frozen tf.Variables held outside Keras (freeze())
        self.built = True

    # ------------------------------------------------------------------ construction
    def _context_routing(self, distribution):
        """Where the context goes in the flow (None for an unconditional model)."""
        bijector = flow_bijector(distribution)
        template = conditioning.routing_template(bijector) if bijector is not None else None
        if self._context_shape is None:
            if template is not None:
                raise ValueError("This flow has conditioners that take a context (e.g. "
                                 "nets.MADE(..., context_size=k)); build the model as "
                                 "FlowModel(dist, context_shape=[k]).")
            return None
        if not self._context_shape.is_fully_defined() or self._context_shape.rank < 1:
            raise ValueError(f"context_shape must be a fully defined shape such as [k]; got "
                             f"{self._context_shape}.")
        if template is None:
            raise ValueError("context_shape was given, but no part of this flow takes a context: "
                             "build its conditioners with one, e.g. nets.MADE(..., "
                             "context_size=k), inside a tfd.TransformedDistribution.")
        return template

    @property
    def is_conditional(self):
        return self._routing is not None

    @property
    def context_shape(self):
        return self._context_shape

    def _density(self, x, context=None, training=False):
        """log p(x) or log p(x | context), without input checks (used inside steps).

        TFP's MAF asks its conditioner twice per log_prob (inverse and log-det); inside
        `made.reuse_outputs()` each MADE runs once (no weights change in here). With
        `training`, `BatchNorm` layers use batch statistics and update their moving ones."""
        with made.reuse_outputs(), batch_norm_training(training):
            if self._routing is None:
                return self._distribution.log_prob(x)
            kwargs = conditioning.fill_template(self._routing,
                                                self._prepare_context(context, training))
            return self._distribution.log_prob(x, bijector_kwargs=kwargs)

    def _prepare_context(self, context, training=False):
        """The context as the conditioners see it: standardised by `context_standardizer`
        when there is one, then through `context_encoder` when there is one. The one place
        contexts are transformed (`_density`, `sample`, and so the SavedModel export, go
        through it)."""
        if self._context_standardizer is not None:
            context = self._context_standardizer.inverse(context)
        if self._context_encoder is not None:  # training: dropout, batch-norm statistics
            context = self._context_encoder(context, training=training)
        return context

    def _encoder_hint(self):
        if getattr(self, "_context_encoder", None) is None:
            return ""
        width = self._encoded_shape.as_list()
        return (f"\nThe context_encoder returns contexts of shape [batch, "
                f"{', '.join(map(str, width))}]: build the conditioners with that context size "
                f"(e.g. nets.MADE(..., context_size={width[-1]})).")

    def _probe_log_prob(self):
        probe = tf.zeros([1, *self._event_shape.as_list()], self._flow_dtype)
        context = None
        if self._routing is not None:
            context = tf.zeros([1, *self._context_shape.as_list()], self._flow_dtype)
        return self._density(probe, context)

    def _build_distribution(self):
        """Run log_prob once so lazily built conditioners create their variables."""
        try:
            lp = self._probe_log_prob()
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
            # TF's error classes take (node_def, op, message): re-raise those as ValueError.
            kind = type(e) if isinstance(e, (TypeError, ValueError)) else ValueError
            raise kind(
                f"FlowModel could not evaluate the distribution's log_prob on a probe batch of "
                f"events of shape {self._event_shape.as_list()} and dtype "
                f"{self._flow_dtype.name}: {getattr(e, 'message', e)}\n"
                f"If the message mentions dtypes, build the conditioners with the flow's "
                f"dtype (e.g. nets.MADE(..., dtype='{self._flow_dtype.name}'))."
                + self._encoder_hint()) from e
        if lp.dtype != self._flow_dtype:
            raise TypeError(f"log_prob returned {lp.dtype.name}, but the distribution's dtype is "
                            f"{self._flow_dtype.name}; build every part in one dtype.")

    def _collect_trainables(self):
        found = find_trainables([self._distribution, self._context_standardizer,
                                 self._context_encoder])
        # Tracked by Keras through these attributes (saving, trainable_weights, summary).
        self._conditioner_layers = list(found.keras_layers)
        self._parameter_variables = list(found.keras_variables)
        # Covered by Keras: the tf.Variables behind the Keras layers' and variables' weights.
        keras_weights = [w for layer in found.keras_layers for w in layer.weights]
        keras_weights += found.keras_variables
        covered = {id(underlying_tf_variable(w)) for w in keras_weights}
        extra = [v for v in found.tf_variables if id(v) not in covered]
        # A variable reached only through a global escapes the walk: the tape sees it.
        # Under a tf.distribute strategy the tape sees per-replica components and refuses
        # cross-replica gradients, so there the walk alone decides (build and check the
        # model once without a strategy to catch frozen variables).
        if not tf.distribute.has_strategy():
            with tf.GradientTape() as tape:
                probe = self._probe_log_prob()
            known = covered | {id(v) for v in extra}
            for v in tape.watched_variables():
                if id(v) not in known:
                    extra.append(v)
                    known.add(id(v))
            self._check_connected(probe, tape, keras_weights, extra, found.owners)
        # Integer variables (tf_keras' internal counters) are state to save, not parameters.
        self._tf_variables = tuple(as_keras_weight(v) for v in extra if v.dtype.is_floating)
        self._tf_state = tuple(v for v in extra if not v.dtype.is_floating)

    def _check_connected(self, probe, tape, keras_weights, tf_variables, owners=None):
        """Refuse a trainable variable that log_prob does not depend on: it would stay frozen.

        The usual causes: a `keras.Variable` passed as a TFP bijector parameter, which TFP
        turns into a constant when the bijector is built; a bijector of one's own that reads
        its variable once in `__init__` (`tf.convert_to_tensor(v)`) instead of where it
        computes. `owners` (from `find_trainables`) names the bijector holding each one.
        """
        candidates = [w for w in keras_weights if w.trainable]
        candidates += [v for v in tf_variables if v.trainable and v.dtype.is_floating]
        grads = tape.gradient(probe, [underlying_tf_variable(w) for w in candidates],
                              unconnected_gradients=tf.UnconnectedGradients.NONE)
        frozen = [w for w, g in zip(candidates, grads, strict=True) if g is None]
        if not frozen:
            return
        owners = owners or {}

        def describe(w):
            name = getattr(w, "path", None) or w.name
            owner = owners.get(id(w))
            return f"{name} (held by {owner})" if owner else name

        names = ", ".join(describe(w) for w in frozen)
        if any(isinstance(w, keras.Variable) for w in frozen):
            advice = ("If you passed a keras.Variable as a TFP bijector parameter, TFP converted "
                      "it to a constant: pass a tf.Variable or tfp.util.TransformedVariable "
                      "(tfp_flows.bijectors.trainable_parameter) instead.")
        else:
            advice = ("If that bijector is your own, its __init__ reads the variable's value "
                      "once (e.g. tf.convert_to_tensor(v)): keep the variable itself "
                      "(self._v = tfp_flows.bijectors.as_parameter(v)) and read it with "
                      "tf.convert_to_tensor(self._v) inside _forward, _inverse and the "
                      "log-det methods.")
        raise ValueError(f"These trainable variables do not affect the distribution's "
                         f"log_prob, so training would leave them frozen: {names}. {advice}")

    # ------------------------------------------------------------------ properties
    @property
    def distribution(self):
        """The wrapped TFP distribution."""
        return self._distribution

    @property
    def event_shape(self):
        return self._event_shape

    @property
    def event_size(self):
        return int(self._event_shape.num_elements())

    @property
    def tf_variables(self):
        """`tf.Variable`s held outside Keras 3 layers (TFP bijectors, tf_keras layers)."""
        return self._tf_variables

    @property
    def weights(self):
        # Keras derives trainable_weights / non_trainable_weights from this list ...
        return super().weights + list(self._tf_variables)

    @property
    def variables(self):
        # ... and trainable_variables (what fit() optimizes) from this one.
        return super().variables + list(self._tf_variables)

    # A tf.Variable's `trainable` cannot change after it is made: freeze() keeps the ids of
    # the TFP-held ones it froze, and these four move them to the non-trainable side.
    def _is_frozen(self, v):
        return id(v) in getattr(self, "_frozen_ids", ())

    @property
    def trainable_weights(self):
        return [v for v in super().trainable_weights if not self._is_frozen(v)]

    @property
    def non_trainable_weights(self):
        frozen = [v for v in super().trainable_weights if self._is_frozen(v)]
        return super().non_trainable_weights + frozen

    @property
    def trainable_variables(self):
        return [v for v in super().trainable_variables if not self._is_frozen(v)]

    @property
    def non_trainable_variables(self):
        frozen = [v for v in super().trainable_variables if self._is_frozen(v)]
        return super().non_trainable_variables + frozen

    @property
    def metrics(self):
        trackers = [self._loss_mean, self._nll_mean]
        if self._bpd_mean is not None:
            trackers.append(self._bpd_mean)
        trackers += getattr(self, "_user_metrics", [])
        return trackers

    # ------------------------------------------------------------------ density API
    def call(self, inputs, training=False):
        """Log-probabilities: `inputs` is x, or (context, x) for a conditional model."""
        if self._routing is None:
            return self._density(inputs)
        context, x = inputs
        return self._density(x, context)

    def log_prob(self, x: TensorLike, context: TensorLike | None = None) -> tf.Tensor:
        """log p(x) (or log p(x | context)) in nats; x: [batch, *event_shape]."""
        x = self._as_event_tensor(x, "x")
        context = self._as_context_tensor(context, x)
        return self._density(x, context)

    def sample(self, n: int, context: TensorLike | None = None, *,
               seed: int | TensorLike | None = None) -> tf.Tensor:
        """`n` samples: shape [n, *event_shape], or [n, batch, *event_shape] given contexts.

        `seed`: None (fresh randomness), a Python int (reproducible: the same int always gives
        the same samples), or a TFP stateless seed (a shape-[2] int tensor).
        """
        if isinstance(seed, (int, np.integer)):
            seed = tf.constant([0, int(seed)], tf.int32)
        context = self._as_context_tensor(context)
        if context is None:
            return self._distribution.sample(n, seed=seed)
        batch = tf.shape(context)[: tf.rank(context) - self._context_shape.rank]
        z = self._distribution.distribution.sample(tf.concat([[n], batch], 0), seed=seed)
        kwargs = conditioning.fill_template(self._routing, self._prepare_context(context))
        return self._distribution.bijector.forward(z, **kwargs)

    def distribution_at(self, context: TensorLike) -> tfp.distributions.Distribution:
        """p(. | context) as a `tfd.Distribution` (`tfp_flows.layers.ConditionedFlow`).

        `context`: raw contexts [*batch, *context_shape] (the batch shape of the result). It
        samples, scores, supports `experimental_sample_and_log_prob` (one forward pass), and
        composes with TFP (`tfd.Independent`, `tfd.MixtureSameFamily`, `tfp.vi`); gradients
        reach the flow's (and the context encoder's) variables.
        """
        from tfp_flows.layers import ConditionedFlow

        if self._routing is None:
            raise ValueError("distribution_at() is for a conditional FlowModel; this one is "
                             "unconditional: model.distribution is its distribution.")
        return ConditionedFlow(self, context)

    def _as_context_tensor(self, context, x=None):
        if self._routing is None:
            if context is not None:
                raise ValueError("This FlowModel is unconditional but was given a context.")
            return None
        if context is None:
            raise ValueError(f"This FlowModel is conditional: pass a context of shape "
                             f"[batch, {', '.join(map(str, self._context_shape.as_list()))}].")
        context = self._as_event_tensor(context, "context", self._context_shape)
        if x is not None and context.shape[0] not in (None, 1) and x.shape[0] not in (None, 1) \
                and context.shape[0] != x.shape[0]:
            raise data_checks.FlowDataError(
                f"x has {x.shape[0]} rows but context has {context.shape[0]}; give one context "
                f"per row (or a single context row for all).")
        return context

    def _as_event_tensor(self, x, what, event_shape=None):
        event_shape = self._event_shape if event_shape is None else event_shape
        if isinstance(x, (np.ndarray, list)) or (isinstance(x, tf.Tensor)
                                                 and tf.executing_eagerly()):
            if what == "x":
                x = self._check_support(x, what)
            x = data_checks.check_array(x, event_shape, self._flow_dtype, what)
            return tf.convert_to_tensor(x)
        x = tf.convert_to_tensor(x)
        data_checks.check_dtype(x.dtype, what)
        data_checks.check_event_shape(x.shape, event_shape, what)
        return tf.cast(x, self._flow_dtype)

    # ------------------------------------------------------------------ standardisation
    def adapt(self, x: TensorLike | tf.data.Dataset, context: TensorLike | None = None) -> None:
        """Fit the flow's data standardisation (and the contexts') to training data.

        Sets the `tfp_flows.bijectors.Standardize` at the data end of the flow to the
        per-coordinate mean and standard deviation of x, after x has passed (inverse
        direction) through any fixed bijectors before it (e.g. a `Bounded`), as
        `keras.layers.Normalization.adapt` does; with `context`, the model's
        `context_standardizer` likewise. loc and scale are non-trainable: `fit()` leaves them
        alone; saving keeps them. Call it once, before `fit()`:

            model = tfp_flows.models.build("maf", 2)
            model.adapt(x_train)                  # conditional: adapt(x_train, context_train)
            model.fit(x_train, epochs=20)         # log_prob, sample: data units

        x: array [N, *event_shape], or a tf.data.Dataset of x batches (of (context, x) pairs
        for a conditional model; then `context` is not given).
        """
        from tfp_flows.bijectors.standardize import Moments, data_end

        fixed, standardize = data_end(flow_bijector(self._distribution))
        if standardize is None and hasattr(self._distribution, "dequantize"):
            raise ValueError("adapt() does not apply to a dequantized model (integer levels, "
                             "e.g. glow, flowpp, pixelmaf, on_discrete_levels): it maps its "
                             "data to the unit cube itself.")
        if standardize is None:
            raise ValueError("adapt() found no tfp_flows.bijectors.Standardize at the data end "
                             "of this flow: build zoo models with standardize=True (the "
                             "default), or put Standardize.identity(D) first in your tfb.Chain "
                             "list (the data end), after fixed bijectors only.")
        if context is not None and self._routing is None:
            raise ValueError("This FlowModel is unconditional: adapt(x) takes no context.")
        if context is not None and self._context_standardizer is None:
            raise ValueError("adapt() was given contexts, but this FlowModel has no "
                             "context_standardizer: build zoo models with standardize=True, or "
                             "pass FlowModel(..., context_standardizer=tfp_flows.bijectors."
                             "Standardize.identity(k)).")
        if isinstance(x, tf.data.Dataset):
            if context is not None:
                raise ValueError("adapt: a tf.data.Dataset already yields (context, x) pairs.")
            conditional = self._routing is not None
            data_checks.check_dataset_spec(x, self._event_shape, "adapt (a tf.data.Dataset)",
                                           context_shape=self._context_shape
                                           if conditional else None)
            moments = Moments(standardize.loc.shape)
            context_moments = None
            if conditional and self._context_standardizer is not None:
                context_moments = Moments(self._context_shape)
            for batch in x:
                batch_x = batch[1] if conditional else batch
                moments.update(self._to_standardize_input(fixed, batch_x, "adapt: x"))
                if context_moments is not None:
                    context_moments.update(batch[0])
            standardize.adapt(moments, what="adapt: x")
            if context_moments is not None:
                self._context_standardizer.adapt(context_moments, what="adapt: context")
            return
        x = data_checks.check_array(x, self._event_shape, self._flow_dtype, "adapt: x")
        standardize.adapt(self._to_standardize_input(fixed, x, "adapt: x"), what="adapt: x")
        if context is not None:
            context = data_checks.check_array(context, self._context_shape, self._flow_dtype,
                                              "adapt: context")
            if len(context) != len(x):
                raise data_checks.FlowDataError(f"adapt: {len(context)} contexts but {len(x)} "
                                                "rows of x; give one context per row.")
            self._context_standardizer.adapt(context, what="adapt: context")

    @staticmethod
    def _to_standardize_input(fixed, x, what):
        """x (NumPy or tensor) mapped through the fixed bijectors before the Standardize,
        after their host-side data checks; NumPy."""
        x = np.asarray(x)
        for bijector in fixed:
            check = getattr(bijector, "check_data", None)
            if check is not None:
                check(x, what)
            x = bijector.inverse(tf.convert_to_tensor(x, bijector.dtype or x.dtype)).numpy()
        return x

    def _check_data_end(self, x, context, what):
        """fit()'s host-side checks of an in-memory x against the flow's data end: rows
        outside a `Bounded`'s box raise; data far from standardised while the Standardize is
        unfitted warn once (and so do contexts)."""
        from tfp_flows.bijectors.standardize import (
            StandardizationWarning,
            data_end,
            far_from_standardized,
        )

        if not isinstance(x, np.ndarray):
            return
        fixed, standardize = data_end(flow_bijector(self._distribution))
        for bijector in fixed:
            check = getattr(bijector, "check_data", None)
            if check is not None:
                check(x, what)
        if getattr(self, "_standardization_warned", False) or what != "x":
            return
        sample = slice(0, 10000)
        advice = []
        if standardize is not None and standardize.is_identity and len(x) > 1:
            mapped = self._to_standardize_input(fixed, x[sample], what)
            far = far_from_standardized(mapped.mean(0), mapped.std(0))
            if far:
                advice.append(f"x ({far})")
        standardizer = self._context_standardizer
        if isinstance(context, np.ndarray) and len(context) > 1 and standardizer is not None \
                and getattr(standardizer, "is_identity", False):
            far = far_from_standardized(context[sample].mean(0), context[sample].std(0))
            if far:
                advice.append(f"the context ({far})")
        if advice:
            self._standardization_warned = True
            call = "model.adapt(x_train, context_train)" if self._routing is not None \
                else "model.adapt(x_train)"
            verb = "are" if len(advice) > 1 else "is"
            warnings.warn(f"{' and '.join(advice)} {verb} far from standardised, and this flow's "
                          f"standardisation is not fitted: call {call} before fit().",
                          StandardizationWarning, stacklevel=3)

    # ------------------------------------------------------------------ training
    def _unpack(self, data):
        """(x, context, sample_weight) of a batch: x or (x, weights) when unconditional,
        (context, x) or (context, x, weights) when conditional."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._routing is None:
            if y is not None:
                if sample_weight is not None:
                    raise ValueError("FlowModel is unconditional: batches are x or "
                                     "(x, sample_weight), not (x, y, sample_weight).")
                # fit(x, sample_weight=w) hands the weights over in Keras' target slot, as
                # does a tf.data set of (x, w) pairs.
                sample_weight = y
            return tf.cast(x, self._flow_dtype), None, sample_weight
        if y is None and isinstance(x, (tuple, list)) and len(x) == 2:
            x, y = x  # predict((context, x)) hands the pair over as one input
        if y is None:
            raise ValueError("This FlowModel is conditional: batches must be (context, x).")
        return tf.cast(y, self._flow_dtype), tf.cast(x, self._flow_dtype), sample_weight

    def _example_sums(self, log_prob, sample_weight):
        """(sum of w * NLL, sum of w) over this replica's examples (w = 1 unweighted)."""
        if sample_weight is None:
            return -tf.reduce_sum(log_prob), tf.cast(tf.size(log_prob), log_prob.dtype)
        w = tf.cast(tf.reshape(sample_weight, [-1]), log_prob.dtype)
        w = tf.reshape(w, [-1] + [1] * (log_prob.shape.rank - 1)) * tf.ones_like(log_prob)
        # A zero-weight row outside the support (log_prob -inf) counts nothing, not NaN.
        return (-tf.reduce_sum(tf.where(w > 0, w * log_prob, tf.zeros_like(log_prob))),
                tf.reduce_sum(w))

    @staticmethod
    def _sum_over_replicas(*values):
        """The sums of scalars over the replicas of a step (the values, on one replica)."""
        if tf.distribute.get_strategy().num_replicas_in_sync == 1:
            return values
        summed = tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.SUM, tf.stop_gradient(tf.stack(values)))
        return tf.unstack(summed)

    def _regularization(self, dtype):
        """The sum of the model's regularisation losses (None without any)."""
        return tf.cast(tf.add_n(self.losses), dtype) if self.losses else None

    def _update_trackers(self, nll_total, count, regularization=None, ok=None,
                         log_prob=None, sample_weight=None):
        """Add one step's sums over the global batch to the trackers; the step's logs.

        `ok` False (a rejected step) adds NaN, so the logs and `StopOnNonFiniteLoss` see it.
        The compile() metrics get this replica's log-probabilities."""
        loss_total = nll_total
        if regularization is not None:
            loss_total = nll_total + regularization * count
        if ok is not None:
            nan = tf.constant(float("nan"), nll_total.dtype)
            nll_total, loss_total = tf.where(ok, nll_total, nan), tf.where(ok, loss_total, nan)
        self._loss_mean.update_state(loss_total, count)
        self._nll_mean.update_state(nll_total, count)
        if self._bpd_mean is not None:
            self._bpd_mean.update_state(nll_total / (self.event_size * math.log(2.0)), count)
        for metric in self._user_metrics:
            metric.update_state(log_prob, sample_weight=sample_weight)
        results = {m.name: m.result() for m in self.metrics}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras 3 reduces step outputs across workers with reduce(MEAN, axis=0), which
            # fails on scalars (tensorflow/tensorflow#72388): hand them over as shape [1].
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def train_step(self, data):
        """One step on the mean NLL over the examples of the global batch (weighted: sum(w *
        nll) / sum(w)). Each replica differentiates the sum over its own rows divided by the
        global count; Keras' optimizer sums those gradients over replicas, so the update is
        that of the global mean on any number of replicas, and a replica with no rows (the
        short last batch) adds a zero gradient."""
        x, context, sample_weight = self._unpack(data)
        variables = self.trainable_variables
        self._traced_trainables = tuple(id(v) for v in variables)  # fit() retraces if it changes
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            log_prob = self._density(x, context, training=True)  # one MADE pass per layer
            total, count = self._example_sums(log_prob, sample_weight)
            total_all, count_all = self._sum_over_replicas(total, count)
            objective = tf.math.divide_no_nan(total, count_all)
            regularization = self._regularization(objective.dtype)
            if regularization is not None:
                objective += regularization / replicas
        ok = tf.math.is_finite(total_all)
        if regularization is not None:
            ok &= tf.math.is_finite(regularization)
        if variables:
            ok = self._apply_or_undo(tape.gradient(objective, variables), variables, ok)
        return self._update_trackers(total_all, count_all, regularization, ok,
                                     log_prob, sample_weight)

    def _apply_or_undo(self, grads, variables, ok, optimizer=None):
        """The one guarded update of every trainer built on a flow (this model's fit,
        `FlowMatching`, `VariationalFit`, `DistilledFlow`).

        Applies `grads` (None: zeros) to `variables` with `optimizer` (default: this
        model's), re-applies the tf_keras constraints of this flow's TFP-held variables, and
        undoes the update (weights and optimizer state) unless `ok` (the caller's loss was
        finite; it must agree across replicas) and every weight is finite after it. Returns
        whether it was kept: report the loss as NaN where not, so that the logs and
        `StopOnNonFiniteLoss` see the rejected step. In-graph, no host sync: a snapshot, the
        update, one finiteness check, then the undo: a tf.cond that writes only on a
        rejected step without a strategy; under a strategy (whose optimizer merge_call
        cannot sit in a tf.cond) a select and write per variable, every step."""
        optimizer = self.optimizer if optimizer is None else optimizer
        grads = [tf.zeros_like(v) if g is None else g
                 for g, v in zip(grads, variables, strict=True)]
        state = [underlying_tf_variable(v)
                 for v in list(variables) + list(optimizer.variables)]
        saved = [v.read_value() for v in state]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        for v in self._tf_variables:  # a Keras 3 optimizer may skip tf_keras constraints
            if v.trainable and not self._is_frozen(v) \
                    and getattr(v, "constraint", None) is not None:
                v.assign(v.constraint(v))
        # The trainable weights alone are checked (a third of Adam's variables): a NaN in the
        # optimizer's state reaches them in the same update; all of the state is restored.
        ok = tf.reduce_all([ok] + [tf.reduce_all(tf.math.is_finite(v))
                                   for v in state[:len(variables)]])

        if not tf.distribute.has_strategy():
            def restore():
                for v, old in zip(state, saved, strict=True):
                    v.assign(old)
                return tf.constant(False)

            tf.cond(ok, lambda: tf.constant(True), restore)
            return ok

        def undo(strategy, ok, saved):
            for v, old in zip(state, saved, strict=True):
                strategy.extended.update(
                    v, lambda var, old, ok: var.assign(tf.where(ok, var, old)),
                    args=(old, ok), group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            undo, tf.distribute.get_strategy(), ok, saved)
        return ok

    def test_step(self, data):
        x, context, sample_weight = self._unpack(data)
        log_prob = self._density(x, context)
        total, count = self._sum_over_replicas(*self._example_sums(log_prob, sample_weight))
        return self._update_trackers(total, count, self._regularization(total.dtype),
                                     log_prob=log_prob, sample_weight=sample_weight)

    def predict_step(self, data):
        x, context, _ = self._unpack(data)
        return self._density(x, context)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`; the loss is always the negative log-likelihood.

        `metrics`: `keras.metrics.Metric` instances whose `update_state(values,
        sample_weight=None)` takes the per-example log-probabilities (and the sample
        weights), e.g. `keras.metrics.Mean(name="mean_log_prob")`; they are reported next to
        `loss` and `nll`. Supervised metrics ("mae", "accuracy", metrics of (y_true, y_pred))
        are refused: a density model has no targets.
        """
        if loss is not None:
            raise ValueError("FlowModel trains by maximum likelihood; compile() takes no loss.")
        if kwargs.get("weighted_metrics"):
            raise ValueError("FlowModel.compile takes no weighted_metrics: pass the metrics as "
                             "metrics=[...]; they receive the sample weights too.")
        kwargs.pop("weighted_metrics", None)
        user_metrics = self._checked_metrics(metrics)
        super().compile(optimizer=optimizer, **kwargs)
        self._check_optimizer(self.optimizer)
        self._user_metrics = user_metrics

    @staticmethod
    def _checked_metrics(metrics):
        if metrics is None:
            return []
        if isinstance(metrics, dict) or not isinstance(metrics, (list, tuple)):
            metrics = [metrics]
        checked = []
        for metric in metrics:
            supervised = isinstance(metric, keras.metrics.MeanMetricWrapper)
            if isinstance(metric, keras.metrics.Metric) and not supervised:
                params = inspect.signature(metric.update_state).parameters
                supervised = "y_true" in params or "y_pred" in params
            if not isinstance(metric, keras.metrics.Metric) or supervised:
                raise ValueError(
                    f"FlowModel reports loss and nll (bits_per_dim with bits_per_dim=True) by "
                    f"itself; compile(metrics=...) takes keras.metrics.Metric instances fed "
                    f"the per-example log-probabilities, such as keras.metrics.Mean("
                    f"name='mean_log_prob'), not {metric!r}: a density model has no targets "
                    f"for supervised metrics.")
            checked.append(metric)
        return checked

    @staticmethod
    def _check_optimizer(optimizer):
        """Refuse a learning rate that can only give NaN weights or ascend the loss."""
        rate = getattr(optimizer, "_learning_rate", None)
        if rate is None or callable(rate):  # a schedule: its values are not known here
            return
        value = float(keras.ops.convert_to_numpy(rate))
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"The optimizer's learning_rate is {value}: give a finite number "
                             f">= 0, e.g. keras.optimizers.Adam(1e-3).")

    def freeze(self, *parts) -> None:
        """Stop training the parameters of `parts`: fine-tune the rest of a trained flow.

        A part is anything in the flow that holds parameters: a Keras conditioner layer (the
        same as `layer.trainable = False`), a bijector, a `tf.Variable` or
        `tfp.util.TransformedVariable`. Frozen parameters keep their values through `fit()`
        and are listed as non-trainable; `unfreeze(*parts)` undoes it. A `tf.Variable` made
        with `trainable=False` is never trained. After changing what is frozen following a
        `fit()`, call `compile()` again if an unfrozen part must get optimizer state.

            model.freeze(model.distribution.bijector.bijectors[-1])  # the first MAF layer
            model.fit(x_new, epochs=5)
        """
        self._set_frozen(parts, True)

    def unfreeze(self, *parts) -> None:
        """Train the parameters of `parts` again (see `freeze`)."""
        self._set_frozen(parts, False)

    def _set_frozen(self, parts, frozen):
        own = {id(underlying_tf_variable(v)) for v in self.weights}
        for part in parts:
            found = find_trainables(part)
            held = [w for layer in found.keras_layers for w in layer.weights]
            held += found.keras_variables + found.tf_variables
            if not held or any(id(underlying_tf_variable(v)) not in own for v in held):
                raise ValueError(f"{part!r} holds no parameters of this FlowModel; freeze() and "
                                 f"unfreeze() take layers, bijectors or variables of its flow.")
            for layer in found.keras_layers:
                layer.trainable = not frozen
            for v in found.keras_variables:
                v.trainable = not frozen
            for v in found.tf_variables:
                if frozen:
                    self._frozen_ids.add(id(v))
                else:
                    self._frozen_ids.discard(id(v))
        self.train_function = None  # traced with the old list of trainable variables

    def fit(self, x=None, y=None, *args, validation_data=None, callbacks=None, **kwargs):
        """Like `keras.Model.fit`: `fit(x)`, or `fit(context, x)` for a conditional model."""
        x, y = self._checked(x, y, "fit")
        if kwargs.get("class_weight") is not None:
            raise ValueError("FlowModel has no classes: give per-row sample_weight instead "
                             "of class_weight.")
        x_data, y_data = x, y  # before the weights take the place of an unconditional y
        x, y, sample_weight = self._weighted(x, y, kwargs.pop("sample_weight", None), "fit")
        if validation_data is not None:
            validation_data = self._checked_validation(validation_data)
        conditional = self._routing is not None
        self._check_data_end(*((y_data, x_data) if conditional else (x_data, None)), "x")
        if validation_data is not None:
            self._check_data_end(validation_data[1] if conditional and isinstance(
                validation_data, tuple) else validation_data, None, "validation_data")
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss())
        self.nonfinite_report = None
        if getattr(self, "_traced_trainables", None) is not None and \
                self._traced_trainables != tuple(id(v) for v in self.trainable_variables):
            self.train_function = None  # `trainable` changed since the step was traced
        if not self.trainable_variables:
            warnings.warn("Every weight of this FlowModel is frozen (model.trainable = False, "
                          "freeze(), or non-trainable variables): fit() reports the loss but "
                          "changes nothing.", UserWarning, stacklevel=2)
        return super().fit(x, y, *args, validation_data=validation_data,
                           callbacks=callbacks, sample_weight=sample_weight, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`evaluate(x)`, or `evaluate(context, x)` for a conditional model; with
        `sample_weight`, the weighted mean NLL sum(w * nll) / sum(w)."""
        if kwargs.get("_use_cached_eval_dataset"):  # fit()'s validation, checked by fit()
            return super().evaluate(x, y, *args, **kwargs)
        x, y = self._checked(x, y, "evaluate")
        x, y, sample_weight = self._weighted(x, y, kwargs.pop("sample_weight", None),
                                             "evaluate")
        return super().evaluate(x, y, *args, sample_weight=sample_weight, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Log-probabilities of `x`, or of `(context, x)` pairs for a conditional model."""
        if self._routing is None:
            return super().predict(self._check_inputs(x, "x"), *args, **kwargs)
        if isinstance(x, tf.data.Dataset):
            return super().predict(x, *args, **kwargs)
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError("predict() of a conditional FlowModel takes a pair (context, x).")
        return super().predict(self._check_pair(*x, "predict"), *args, **kwargs)

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """`keras.Model.summary`, plus one row per TFP object that holds parameters as
        `tf.Variable`s (a bijector's parameters, a tf_keras layer), which Keras has no rows
        for; the totals count every parameter either way."""
        lines = []
        super().summary(line_length=line_length, positions=positions,
                        print_fn=lambda text, **_: lines.append(text),
                        expand_nested=expand_nested, show_trainable=show_trainable,
                        layer_range=layer_range)
        text = "\n".join(lines)
        holders = self._parameter_holders()
        if holders:
            import rich.console
            import rich.table

            table = rich.table.Table("Held by (type)", "Variables", "Param #",
                                     width=line_length, show_lines=True)
            table.columns[2].justify = "right"
            trainable = {id(v) for v in self.trainable_weights}
            for label, variables in holders:
                names = ", ".join(f"{v.name.split(':')[0]} {v.shape.as_list()}"
                                  + ("" if id(v) in trainable else " (non-trainable)")
                                  for v in variables)
                table.add_row(label, names, f"{sum(v.shape.num_elements() for v in variables):,}")
            console = rich.console.Console(highlight=False, force_terminal=False,
                                           color_system=None)
            with console.capture() as capture:
                console.print(" Parameters held by TFP objects (counted in the totals):")
                console.print(table)
            at = text.find(" Total params:")
            at = len(text) if at < 0 else at
            text = text[:at] + capture.get() + text[at:]
        if print_fn is None:
            print(text.rstrip("\n"))
        else:
            print_fn(text)

    def _parameter_holders(self):
        """[(label, [tf.Variable])]: the nearest TFP object (bijector, distribution, tf_keras
        layer) holding each of `tf_variables`, in the flow's order."""
        wanted = {id(v): v for v in self._tf_variables}
        holders = {}
        roots = [("distribution", self._distribution),
                 ("context_standardizer", getattr(self, "_context_standardizer", None))]
        for _, root in roots:
            if not isinstance(root, tf.Module):
                continue
            for path, v in root._flatten(predicate=lambda o: isinstance(o, tf.Variable),
                                         with_path=True):
                if id(v) not in wanted or id(v) in holders:
                    continue
                holder, obj = root, root
                for key in path[:-1]:
                    obj = obj[key] if isinstance(obj, (dict, list, tuple)) else getattr(obj, key)
                    if isinstance(obj, tf.Module) and not isinstance(obj, tfp.util.DeferredTensor):
                        holder = obj
                holders[id(v)] = holder
        grouped = {}
        for v in self._tf_variables:
            holder = holders.get(id(v))
            label = "(reached through a global)" if holder is None else \
                f"{getattr(holder, 'name', '?')} ({type(holder).__name__})"
            grouped.setdefault((id(holder), label), []).append(v)
        return [(label, vs) for (_, label), vs in grouped.items()]

    # ------------------------------------------------------------------ weights
    def save_own_variables(self, store):
        """Save Keras-tracked own variables and the TFP-held `tf.Variable`s."""
        super().save_own_variables(store)
        for i, v in enumerate(self._tf_variables + self._tf_state):
            store[f"tfp_{i}"] = v.numpy()

    def load_own_variables(self, store):
        own = len(self._trainable_variables) + len(self._non_trainable_variables)
        held = self._tf_variables + self._tf_state
        expected = own + len(held)
        if len(store.keys()) != expected:
            raise ValueError(f"The weights file holds {len(store.keys())} variables for this "
                             f"FlowModel, which has {expected}: it was saved from a different "
                             "flow.")
        for i, v in enumerate(self._trainable_variables + self._non_trainable_variables):
            v.assign(store[f"{i}"])
        for i, v in enumerate(held):
            value = np.asarray(store[f"tfp_{i}"])
            if tuple(value.shape) != tuple(v.shape):
                raise ValueError(f"Weight tfp_{i} has shape {value.shape} in the file but "
                                 f"{tuple(v.shape)} in this FlowModel ({v.name}).")
            v.assign(value)

    def save(self, filepath, *args, **kwargs):
        """`keras.Model.save`; a flow that cannot be serialised leaves no file behind."""
        from tfp_flows.serialization import NotSerializableError

        existed = os.path.exists(str(filepath))
        try:
            return super().save(filepath, *args, **kwargs)
        except NotSerializableError:
            if not existed and os.path.exists(str(filepath)):
                os.remove(str(filepath))
            raise

    def get_config(self):
        """Every constructor argument, the distribution as a tree of TFP classes and their
        parameters (`tfp_flows.serialization`), so `model.save("flow.keras")` works.

        Raises `tfp_flows.serialization.NotSerializableError` (a TypeError) naming the part
        that has no config (a lambda, a closure, an unregistered class); such a model is saved
        with `save_weights` and rebuilt by the code that built it.
        """
        from tfp_flows.serialization import flow_model_config

        return flow_model_config(self)

    @classmethod
    def from_config(cls, config):
        from tfp_flows.serialization import flow_model_from_config

        return flow_model_from_config(cls, config)

    # Keras restores the compile settings (and so the optimizer's state) of a loaded .keras
    # model only if a model that overrides compile() also overrides these two.
    def get_compile_config(self):
        return super().get_compile_config()

    def compile_from_config(self, config):
        from keras.src.saving import serialization_lib

        self.compile(**serialization_lib.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)  # so the saved optimizer state loads

    # ------------------------------------------------------------------ export
    def export(self, filepath: str | os.PathLike, format: str = "tf_saved_model",
               verbose: bool | None = None, input_signature: object = None,
               *, version: int | None = None, overwrite: bool = False,
               max_samples: int | None = None, dequantization_draws: int | None = None,
               **kwargs) -> str:
        """Write a TF SavedModel for TF Serving; returns its version folder.

        Keras' `Model.export` signature; `format` must be "tf_saved_model" (the one format
        whose signatures can hold a flow's log_prob, sample, forward and inverse), `verbose`
        (default: on, as in Keras) prints one line naming the folder and the signatures,
        and `input_signature` is not taken (the signatures follow the event shape).
        `filepath` is a model folder (the next free version is written) or a version folder.
        Keyword-only, see `tfp_flows.export.export_saved_model`: `version`, `overwrite`,
        `max_samples` (largest n of the `sample` signature, default 100000) and
        `dequantization_draws` (fixed noise draws of a dequantized model's `log_prob`).
        """
        writer = export_writer(format)
        if writer is None:
            known = ", ".join(repr(f) for f in sorted({*_EXPORT_FORMATS, *_EXPORT_PROVIDERS}))
            raise ValueError(f"FlowModel.export writes format {known}; got format={format!r}. "
                             "Its signatures (log_prob, sample, forward, inverse) are TF "
                             "functions that other formats cannot hold.")
        options = {"max_samples": max_samples, "dequantization_draws": dequantization_draws}
        kwargs.update({k: v for k, v in options.items() if v is not None})
        return writer(self, filepath, verbose=verbose, input_signature=input_signature,
                      version=version, overwrite=overwrite, **kwargs)


# Export formats by name -> writer(model, filepath, *, verbose, input_signature, **options).
# The writers live above the model and register themselves when imported; this module names
# the module that provides each built-in format (as data, like a plotting backend's name)
# and never imports it: imports go one way, from export down to the model.
_EXPORT_FORMATS = {}
_EXPORT_PROVIDERS = {"tf_saved_model": "tfp_flows.export"}


def register_export_format(name: str, writer) -> None:
    """Make `FlowModel.export(path, format=name)` call `writer`."""
    _EXPORT_FORMATS[name] = writer


def export_writer(name: str):
    """The writer registered for export format `name` (loading its provider), or None."""
    if name not in _EXPORT_FORMATS and name in _EXPORT_PROVIDERS:
        import importlib

        importlib.import_module(_EXPORT_PROVIDERS[name])  # registers its formats
    return _EXPORT_FORMATS.get(name)
