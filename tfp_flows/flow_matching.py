"""Flow matching: train a continuous flow (FFJORD) by regression instead of maximum likelihood.

A FFJORD flow moves a base sample x0 (t = 0) to a data point x1 (t = 1) along
dx/dt = v_theta(t, x). Maximum likelihood needs the ODE solved, with the trace of the Jacobian
integrated, in every training step. Conditional flow matching (Lipman et al. 2023, "Flow
Matching for Generative Modeling", arXiv:2210.02747) trains the same network without any ODE
solve: for a pair (x0, x1) it picks the straight path

    x_t = (1 - (1 - sigma_min) t) x0 + t x1,     u_t = x1 - (1 - sigma_min) x0,

and regresses the network onto the path's velocity,

    loss = E_{t ~ U(0, 1), (x0, x1)} || v_theta(t, x_t) - u_t ||^2   (mean over dimensions),

whose minimiser is a velocity field that carries the base distribution onto the data
distribution. The density and samples then come from the same continuous change of
variables as for a maximum-likelihood FFJORD (TFP's `tfb.FFJORD` with the same network):
`log_prob`, `sample`, `evaluate` (test NLL) and export work unchanged.

Couplings of x0 and x1 (Tong et al. 2023, "Improving and generalizing flow-based generative
models with minibatch optimal transport", arXiv:2302.00482):

* "independent": x0 ~ base drawn in the training step, independent of the batch x1 (I-CFM).
* "ot": minibatch optimal transport (OT-CFM): for a batch of n data points and n base
  samples, the exact assignment minimising sum ||x0_i - x1_pi(i)||^2 (scipy's
  `linear_sum_assignment`, O(n^3)) pairs them, which gives straighter, less crossing paths:
  cheaper and more accurate ODE solves. The assignment runs on the host, in the `tf.data`
  input pipeline (`tf.numpy_function`, overlapped with training by prefetching), so the
  compiled training step stays free of host calls; the base samples are drawn there too.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.bijectors.chain import _Chain

from tfp_flows.flow_model import FlowModel, StopOnNonFiniteLoss, flow_bijector

tfb = tfp.bijectors

COUPLINGS = ("independent", "ot")


def ot_assignment(x0, x1):
    """Row order of x0 that pairs x0[order[i]] with x1[i] at minimal total squared distance
    (exact, scipy's Hungarian-type solver); NumPy in, NumPy int64 out."""
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(x0, np.float64).reshape(len(x0), -1)
    b = np.asarray(x1, np.float64).reshape(len(x1), -1)
    cost = (np.sum(a * a, 1)[:, None] + np.sum(b * b, 1)[None, :] - 2.0 * a @ b.T)
    rows, cols = linear_sum_assignment(cost)
    order = np.empty(len(b), np.int64)
    order[cols] = rows
    return order


def _in_application_order(bijector):
    """The parts of a (nested) Chain in the order they act on the base sample."""
    if isinstance(bijector, _Chain):  # tfb.Chain, or the type TFP builds around Keras layers
        return [p for part in reversed(bijector.bijectors) for p in _in_application_order(part)]
    return [bijector]


def _split_at_ffjord(distribution):
    """(base side, FFJORD, data side) of a flow: the fixed bijectors that act before and
    after its single `tfb.FFJORD` (identity chains when there are none), or a clear error."""
    bijector = flow_bijector(distribution)
    parts = [] if bijector is None else _in_application_order(bijector)
    blocks = [i for i, p in enumerate(parts) if isinstance(p, tfb.FFJORD)]
    if len(blocks) != 1:
        raise ValueError("FlowMatching trains a continuous flow with one FFJORD block: pass "
                         "the distribution of e.g. models.build_ffjord(D, num_layers=1).")
    i = blocks[0]
    trainable = [p.name for p in parts[:i] + parts[i + 1:] if p.trainable_variables]
    if trainable:
        raise ValueError(f"FlowMatching trains only the FFJORD network, but these other parts "
                         f"of the flow have trainable variables: {', '.join(trainable)}.")
    # tfb.Chain lists its parts last-applied first.
    return (tfb.Chain(parts[:i][::-1], name="base_side"), parts[i],
            tfb.Chain(parts[i + 1:][::-1], name="data_side"))


@keras.saving.register_keras_serializable(package="tfp_flows")
class FlowMatching(FlowModel):
    """A FFJORD flow trained by conditional flow matching; a `FlowModel` otherwise.

    ```python
    ffjord = models.build_ffjord(2, solver="rk4")        # one FFJORD block, ODEDynamics
    model = tfp_flows.FlowMatching(ffjord.distribution, coupling="ot")
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x_train, epochs=20, batch_size=256)        # regression: no ODE solve
    model.evaluate(x_test)                               # test NLL, by the ODE
    model.log_prob(x); model.sample(1000, seed=1)
    ```

    Training: `loss` is the flow-matching regression loss (mean squared error per
    dimension between v_theta(t, x_t) and x1 - (1 - sigma_min) x0; see the module
    docstring), not a likelihood; `evaluate()` and `validation_data` report the negative
    log-likelihood (`loss` = `nll`) through the continuous change of variables, as for any
    FlowModel (so `val_loss` is the validation NLL). A step with a non-finite loss, or whose
    update would make a weight non-finite, is undone and fit() stops with a warning, as in
    FlowModel. The network is shared with the FFJORD bijector:
    the FlowModel the distribution came from sees the trained weights. Training runs on one
    device (tf.distribute strategies are not supported by this train step).

    Args:
      distribution: a `tfd.TransformedDistribution` of a base (x0 is drawn from it) through
        one `tfb.FFJORD`, whose `state_time_derivative_fn` (e.g. `nets.ODEDynamics`) is
        v_theta, and any fixed bijectors around it (e.g. the zoo's `Standardize`: call
        `model.adapt(x_train)` before fit, as for a FlowModel); the paths run between the
        FFJORD block's two ends.
      coupling: "independent" or "ot" (minibatch optimal transport, computed in the input
        pipeline: `fit` then takes arrays or a `tf.data.Dataset` of batches).
      sigma_min: width of the probability path at t = 1 (0: straight interpolation).
      bits_per_dim: also report NLL in bits per dimension when evaluating.
      seed: int or None: the base samples and times of the training steps.
    """

    def __init__(self, distribution, *, coupling: str = "independent", sigma_min: float = 0.0,
                 bits_per_dim: bool = False, seed: int | None = None, name: str | None = None,
                 **kwargs):
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}; got {coupling!r}.")
        if coupling == "ot":
            try:
                import scipy.optimize  # noqa: F401
            except ImportError:
                raise ImportError("coupling='ot' needs scipy: pip install scipy (it comes "
                                  "with the 'data' extra, tfp-flows[data]).") from None
        if not 0.0 <= float(sigma_min) < 1.0:
            raise ValueError(f"sigma_min must be in [0, 1); got {sigma_min}.")
        if kwargs.get("context_shape") is not None:
            raise ValueError("FlowMatching trains unconditional flows only.")
        kwargs.pop("context_shape", None)
        sides = _split_at_ffjord(distribution)
        super().__init__(distribution, bits_per_dim=bits_per_dim, name=name, **kwargs)
        self._base_side, self._ffjord, self._data_side = sides
        self.coupling = coupling
        self.sigma_min = float(sigma_min)
        self.seed = seed
        self._noise = keras.random.SeedGenerator(seed)

    @property
    def dynamics(self):
        """v_theta(t, x), the FFJORD block's `state_time_derivative_fn`."""
        return self._ffjord._state_time_derivative_fn

    # ------------------------------------------------------------------ training
    def _base_sample(self, n, seed):
        """x0: n base samples moved to where the FFJORD block starts."""
        return self._base_side.forward(self._distribution.distribution.sample(n, seed=seed))

    def _to_ffjord_end(self, x):
        """Data moved to where the FFJORD block ends (through fixed maps such as
        `Standardize`)."""
        return self._data_side.inverse(tf.cast(x, self._flow_dtype))

    def flow_matching_loss(self, x0, x1, t):
        """Mean squared error per dimension of v_theta(t, x_t) against u_t; x0, x1 at the
        FFJORD block's two ends, t: [batch].

        The network is called with t of shape [batch, 1, ...] (one time per row,
        broadcasting against x_t), which `nets.ODEDynamics` takes as it takes a scalar."""
        shape = tf.concat([tf.shape(t), tf.ones([self._event_shape.rank], tf.int32)], 0)
        t = tf.reshape(tf.cast(t, x1.dtype), shape)
        c = 1.0 - self.sigma_min
        x_t = (1.0 - c * t) * x0 + t * x1
        target = x1 - c * x0
        v = self.dynamics(t, x_t)
        return tf.reduce_mean(tf.math.squared_difference(v, target))

    def train_step(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:  # independent coupling: the batch is x1
            x1 = self._to_ffjord_end(x)
            seed = keras.random.randint([2], 0, 2**31 - 1, seed=self._noise, dtype="int32")
            x0 = self._base_sample(tf.shape(x1)[0], seed)
        else:  # pairs (x0, x1) from the OT input pipeline
            x0, x1 = tf.cast(x, self._flow_dtype), self._to_ffjord_end(y)
        t = keras.random.uniform(tf.shape(x1)[:1], dtype=self._flow_dtype, seed=self._noise)
        variables = self.trainable_variables
        with tf.GradientTape() as tape:
            loss = self.flow_matching_loss(x0, x1, t)
        finite = self._apply_or_undo(tape.gradient(loss, variables), variables,
                                     tf.math.is_finite(loss))
        self._loss_tracker.update_state(tf.where(finite, loss, tf.constant(np.nan, loss.dtype)))
        return {"loss": self._loss_tracker.result()}

    def _ot_pairs(self, dataset):
        """Batches x1 -> (x0, x1) with x0 ~ base reordered by the minibatch OT assignment."""
        seeds = tf.data.Dataset.random(seed=self.seed, rerandomize_each_iteration=True)
        seeds = seeds.batch(2)

        def pair(x1, seed):
            x1 = tf.cast(x1, self._flow_dtype)
            x0 = self._base_sample(tf.shape(x1)[0], tf.cast(seed % (2**31 - 1), tf.int32))
            order = tf.numpy_function(ot_assignment, [x0, self._to_ffjord_end(x1)], tf.int64,
                                      stateful=False)
            return tf.gather(x0, tf.reshape(order, [-1])), x1

        return (tf.data.Dataset.zip(dataset, seeds)
                .map(pair, num_parallel_calls=tf.data.AUTOTUNE)
                .prefetch(tf.data.AUTOTUNE))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, *, validation_data=None,
            callbacks=None, shuffle=True, **kwargs):
        """`fit(x)` like FlowModel; with coupling="ot", x is an array (batched here,
        `batch_size` default 32, reshuffled every epoch) or a `tf.data.Dataset` of batches."""
        if self.coupling == "independent":
            return super().fit(x, y, batch_size=batch_size, epochs=epochs,
                               validation_data=validation_data, callbacks=callbacks,
                               shuffle=shuffle, **kwargs)
        x, _ = self._checked(x, y, "fit")
        if not isinstance(x, (np.ndarray, tf.data.Dataset)):
            raise ValueError("FlowMatching(coupling='ot').fit takes the data as an array or a "
                             "tf.data.Dataset of batches (the pairing runs in tf.data).")
        if isinstance(x, np.ndarray):
            n = len(x)
            x = tf.data.Dataset.from_tensor_slices(x)
            if shuffle:
                x = x.shuffle(n, seed=self.seed, reshuffle_each_iteration=True)
            x = x.batch(batch_size or 32)
        elif batch_size is not None:
            raise ValueError("fit: a tf.data.Dataset yields batches already; leave out "
                             "batch_size.")
        if validation_data is not None:
            validation_data = self._check_inputs(validation_data, "validation_data")
        callbacks = list(callbacks or [])
        if not any(isinstance(c, StopOnNonFiniteLoss) for c in callbacks):
            callbacks.append(StopOnNonFiniteLoss())
        self.nonfinite_report = None
        return keras.Model.fit(self, self._ot_pairs(x), epochs=epochs, shuffle=False,
                               validation_data=validation_data, callbacks=callbacks, **kwargs)


__all__ = ["FlowMatching", "COUPLINGS", "ot_assignment"]
