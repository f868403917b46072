"""`FlowModel`: any TFP distribution as a Keras 3 model trained by maximum likelihood."""

import math
import os
import warnings

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import conditioning, data_checks
from tfp_flows.nets import made
from tfp_flows.variable_discovery import find_trainables, underlying_tf_variable

tfb = tfp.bijectors


class NonFiniteLossWarning(RuntimeWarning):
    """Training met a non-finite loss or gradient and stopped."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit()` at the first batch whose loss or gradient was not finite.

    `FlowModel.train_step` never applies a non-finite update, so the weights at the stop
    are those of the last finite step. This callback only reports and stops; `FlowModel.fit`
    adds it by itself. The details stay in `model.nonfinite_report`.
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
        report = (f"non-finite loss or gradient in epoch {self._epoch + 1}, batch {batch + 1} "
                  f"(counting batches from 1 within the epoch); that update was skipped and "
                  f"training stopped. The model keeps the weights of the last finite step.")
        self.model.nonfinite_report = report
        self.model.stop_training = True
        warnings.warn(report, NonFiniteLossWarning, stacklevel=2)


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
class FlowModel(keras.Model):
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
    applied after every update, so such a MAF stays autoregressive.

    Training: the loss is the mean negative log-likelihood in nats per example (`loss`,
    and `nll` without regularisation losses); with `bits_per_dim=True` the metric
    `bits_per_dim` = nll / (D ln 2) is reported too. A step whose loss or gradient is not
    finite is skipped inside the compiled step and `fit()` stops with a warning naming the
    epoch and batch; the weights are those of the last finite step.

    Several devices: build and compile under a `tf.distribute` strategy's scope
    (`MirroredStrategy`, `MultiWorkerMirroredStrategy`); each step's gradient is that of the
    mean loss over the global batch, as on one device. Reproducibility: call
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

    Args:
      distribution: a `tfd.Distribution` with a fully defined event shape (for a
        conditional flow, a `tfd.TransformedDistribution`).
      context_shape: shape of one context, e.g. [k]; None for an unconditional flow.
      bits_per_dim: also report NLL in bits per dimension.
      name: Keras model name.
    """

    def __init__(self, distribution, *, context_shape=None, bits_per_dim=False, name=None,
                 **kwargs):
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
        self._context_shape = None if context_shape is None else tf.TensorShape(context_shape)
        self._routing = self._context_routing(distribution)
        self._build_distribution()
        self._collect_trainables()
        self._loss_tracker = keras.metrics.Mean(name="loss")
        self._nll_tracker = keras.metrics.Mean(name="nll")
        self._bpd_tracker = keras.metrics.Mean(name="bits_per_dim") if bits_per_dim else None
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

    def _density(self, x, context=None):
        """log p(x) or log p(x | context), without input checks (used inside steps).

        TFP's MAF asks its conditioner twice per log_prob (inverse and log-det); inside
        `made.reuse_outputs()` each MADE runs once (no weights change in here)."""
        with made.reuse_outputs():
            if self._routing is None:
                return self._distribution.log_prob(x)
            kwargs = conditioning.fill_template(self._routing, context)
            return self._distribution.log_prob(x, bijector_kwargs=kwargs)

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
            raise type(e)(
                f"FlowModel could not evaluate the distribution's log_prob on a probe batch of "
                f"events of shape {self._event_shape.as_list()} and dtype "
                f"{self._flow_dtype.name}: {e}\n"
                f"If the message mentions dtypes, build the conditioners with the flow's "
                f"dtype (e.g. nets.MADE(..., dtype='{self._flow_dtype.name}')).") from e
        if lp.dtype != self._flow_dtype:
            raise TypeError(f"log_prob returned {lp.dtype.name}, but the distribution's dtype is "
                            f"{self._flow_dtype.name}; build every part in one dtype.")

    def _collect_trainables(self):
        found = find_trainables(self._distribution)
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
            self._check_connected(probe, tape, keras_weights, extra)
        # Integer variables (tf_keras' internal counters) are state to save, not parameters.
        self._tf_variables = tuple(v for v in extra if v.dtype.is_floating)
        self._tf_state = tuple(v for v in extra if not v.dtype.is_floating)

    def _check_connected(self, probe, tape, keras_weights, tf_variables):
        """Refuse a trainable variable that log_prob does not depend on: it would stay frozen.

        The usual cause: a `keras.Variable` passed as a TFP bijector parameter, which TFP
        turns into a constant when the bijector is built.
        """
        candidates = [w for w in keras_weights if w.trainable]
        candidates += [v for v in tf_variables if v.trainable and v.dtype.is_floating]
        grads = tape.gradient(probe, [underlying_tf_variable(w) for w in candidates],
                              unconnected_gradients=tf.UnconnectedGradients.NONE)
        frozen = [w for w, g in zip(candidates, grads, strict=True) if g is None]
        if frozen:
            names = ", ".join(getattr(w, "path", None) or w.name for w in frozen)
            raise ValueError(
                f"These trainable variables do not affect the distribution's log_prob, so "
                f"training would leave them frozen: {names}. If you passed a keras.Variable "
                f"as a TFP bijector parameter, TFP converted it to a constant: pass a "
                f"tf.Variable or tfp.util.TransformedVariable instead.")

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

    def _get_regularization_losses(self):
        # Keras' version reads `.regularizer` off every trainable weight; the TFP-held
        # tf.Variables have none, so only Keras' own weights can carry regularizers.
        return [v.regularizer(v) for v in self.trainable_weights
                if getattr(v, "regularizer", None) is not None]

    @property
    def metrics(self):
        trackers = [self._loss_tracker, self._nll_tracker]
        if self._bpd_tracker is not None:
            trackers.append(self._bpd_tracker)
        return trackers

    # ------------------------------------------------------------------ density API
    def call(self, inputs, training=False):
        """Log-probabilities: `inputs` is x, or (context, x) for a conditional model."""
        if self._routing is None:
            return self._density(inputs)
        context, x = inputs
        return self._density(x, context)

    def log_prob(self, x, context=None):
        """log p(x) (or log p(x | context)) in nats; x: [batch, *event_shape]."""
        x = self._as_event_tensor(x, "x")
        context = self._as_context_tensor(context, x)
        return self._density(x, context)

    def sample(self, n, context=None, *, seed=None):
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
        kwargs = conditioning.fill_template(self._routing, context)
        return self._distribution.bijector.forward(z, **kwargs)

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

    # ------------------------------------------------------------------ training
    def _unpack(self, data):
        """(x, context, sample_weight) of a batch: x, or (context, x) when conditional."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if self._routing is None:
            if y is not None:
                raise ValueError("FlowModel is unconditional: train it on the data alone, "
                                 "fit(x), not fit(x, y).")
            return tf.cast(x, self._flow_dtype), None, sample_weight
        if y is None and isinstance(x, (tuple, list)) and len(x) == 2:
            x, y = x  # predict((context, x)) hands the pair over as one input
        if y is None:
            raise ValueError("This FlowModel is conditional: batches must be (context, x).")
        return tf.cast(y, self._flow_dtype), tf.cast(x, self._flow_dtype), sample_weight

    def _nll(self, x, context, sample_weight):
        log_prob = self._density(x, context)  # one MADE pass (and backward) per MAF layer
        if sample_weight is None:
            return -tf.reduce_mean(log_prob)
        sample_weight = tf.cast(sample_weight, log_prob.dtype)
        return -tf.reduce_sum(log_prob * sample_weight) / tf.reduce_sum(sample_weight)

    def _update_trackers(self, loss, nll):
        self._loss_tracker.update_state(loss)
        self._nll_tracker.update_state(nll)
        if self._bpd_tracker is not None:
            self._bpd_tracker.update_state(nll / (self.event_size * math.log(2.0)))
        results = {m.name: m.result() for m in self.metrics}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras 3 reduces step outputs across workers with reduce(MEAN, axis=0), which
            # fails on scalars (tensorflow/tensorflow#72388): hand them over as shape [1].
            results = {k: tf.reshape(v, [1]) for k, v in results.items()}
        return results

    def train_step(self, data):
        x, context, sample_weight = self._unpack(data)
        variables = self.trainable_variables
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            nll = self._nll(x, context, sample_weight)
            loss = nll
            if self.losses:
                loss = loss + tf.cast(tf.add_n(self.losses), loss.dtype)
            # Keras' optimizer SUMS gradients over replicas: differentiate loss / replicas so
            # the update is that of the mean loss over the global batch, as on one device.
            scaled_loss = loss / replicas if replicas > 1 else loss
        grads = tape.gradient(scaled_loss, variables)
        grads = [tf.zeros_like(v) if g is None else g
                 for g, v in zip(grads, variables, strict=True)]
        finite = tf.reduce_all([tf.math.is_finite(loss)]
                               + [tf.reduce_all(tf.math.is_finite(g)) for g in grads])

        def apply(grads):
            self.optimizer.apply_gradients(zip(grads, variables, strict=True))
            for v in self._tf_variables:  # a Keras 3 optimizer may skip tf_keras constraints
                if v.trainable and getattr(v, "constraint", None) is not None:
                    v.assign(v.constraint(v))
            return tf.constant(True)

        if replicas > 1:
            # The gradient all-reduce cannot sit inside a tf.cond across replicas: there a
            # non-finite step is applied with zero gradients (the optimizer's momentum moves
            # the weights once more) before fit() stops.
            apply([tf.where(finite, g, tf.zeros_like(g)) for g in grads])
        else:
            tf.cond(finite, lambda: apply(grads), lambda: tf.constant(False))
        nan = tf.constant(float("nan"), loss.dtype)
        return self._update_trackers(tf.where(finite, loss, nan), tf.where(finite, nll, nan))

    def test_step(self, data):
        x, context, sample_weight = self._unpack(data)
        nll = self._nll(x, context, sample_weight)
        loss = nll + tf.cast(tf.add_n(self.losses), nll.dtype) if self.losses else nll
        return self._update_trackers(loss, nll)

    def predict_step(self, data):
        x, context, _ = self._unpack(data)
        return self._density(x, context)

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """Like `keras.Model.compile`; the loss is always the negative log-likelihood."""
        if loss is not None:
            raise ValueError("FlowModel trains by maximum likelihood; compile() takes no loss.")
        super().compile(optimizer=optimizer, **kwargs)

    def _check_inputs(self, x, what):
        """Check data for an unconditional model: x alone."""
        if x is None:
            return None
        if isinstance(x, tf.data.Dataset):
            data_checks.check_dataset_spec(x, self._event_shape, f"{what} (a tf.data.Dataset)")
            return x
        if isinstance(x, (tuple, list)) and len(x) and not isinstance(x[0], (int, float)):
            if len(x) == 1 or (len(x) == 2 and x[1] is None):
                return self._check_inputs(x[0], what)
            raise ValueError(f"{what}: FlowModel is unconditional and takes the data alone, "
                             f"not a tuple of {len(x)} arrays.")
        if isinstance(x, (np.ndarray, tf.Tensor, list)):
            x = self._check_support(x, what)
            return data_checks.check_array(x, self._event_shape, self._flow_dtype, what)
        return x  # generators, PyDatasets: checked by the step's dtype/shape handling

    def _check_support(self, x, what):
        """The distribution's own host-side data check, if it has one (`check_data(x, what)`,
        e.g. `DequantizedDistribution`: integer levels in range); returns the checked x."""
        check = getattr(self._distribution, "check_data", None)
        return x if check is None else check(x, what)

    def _check_pair(self, context, x, what):
        """Check (context, x) for a conditional model; returns the checked pair."""
        if isinstance(context, tf.data.Dataset):
            if x is not None:
                raise ValueError(f"{what}: a tf.data.Dataset already yields (context, x).")
            data_checks.check_dataset_spec(context, self._event_shape,
                                           f"{what} (a tf.data.Dataset)",
                                           context_shape=self._context_shape)
            return context, None
        if x is None:
            raise ValueError(f"{what}: this FlowModel is conditional and trains on pairs: "
                             f"fit(context, x) with contexts of shape "
                             f"{self._context_shape.as_list()} per row.")
        if not isinstance(context, (np.ndarray, tf.Tensor, list)):
            return context, x
        context = data_checks.check_array(context, self._context_shape, self._flow_dtype,
                                          f"{what}: context")
        x = data_checks.check_array(x, self._event_shape, self._flow_dtype, f"{what}: x")
        if len(context) != len(x):
            raise data_checks.FlowDataError(f"{what}: {len(context)} contexts but {len(x)} rows "
                                            "of x; give one context per row.")
        return context, x

    def _checked(self, x, y, what):
        """(inputs, targets) for Keras: (x, None), or (context, x) when conditional."""
        if self._routing is None:
            if y is not None:
                raise ValueError(f"FlowModel is unconditional: {what}(x) takes the data "
                                 "alone, no targets.")
            return self._check_inputs(x, "x"), None
        return self._check_pair(x, y, what)

    def fit(self, x=None, y=None, *args, validation_data=None, callbacks=None, **kwargs):
        """Like `keras.Model.fit`: `fit(x)`, or `fit(context, x)` for a conditional model."""
        x, y = self._checked(x, y, "fit")
        if validation_data is not None:
            if self._routing is None:
                validation_data = self._check_inputs(validation_data, "validation_data")
            elif not isinstance(validation_data, tf.data.Dataset):
                if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                    raise ValueError("validation_data of a conditional FlowModel is a pair "
                                     "(context, x) or a tf.data.Dataset of pairs.")
                validation_data = self._check_pair(*validation_data, "validation_data")
            else:
                self._check_pair(validation_data, None, "validation_data")
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss())
        self.nonfinite_report = None
        return super().fit(x, y, *args, validation_data=validation_data,
                           callbacks=callbacks, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """`evaluate(x)`, or `evaluate(context, x)` for a conditional model."""
        x, y = self._checked(x, y, "evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        """Log-probabilities of `x`, or of `(context, x)` pairs for a conditional model."""
        if self._routing is None:
            return super().predict(self._check_inputs(x, "x"), *args, **kwargs)
        if isinstance(x, tf.data.Dataset):
            return super().predict(x, *args, **kwargs)
        if not isinstance(x, (tuple, list)) or len(x) != 2:
            raise ValueError("predict() of a conditional FlowModel takes a pair (context, x).")
        return super().predict(self._check_pair(*x, "predict"), *args, **kwargs)

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
    def export(self, filepath, **kwargs):
        """Write a TF SavedModel for TF Serving; returns its version folder.

        Signatures serving_default/log_prob, sample, forward, inverse; `filepath` is a model
        folder (the next version is written) or a version folder. See
        `tfp_flows.export.export_saved_model` for the keyword arguments.
        """
        from tfp_flows.export import export_saved_model

        return export_saved_model(self, filepath, **kwargs)
