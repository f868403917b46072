"""Flows as density heads of Keras models, and conditioned flows as TFP distributions.

Two ways to put a conditional flow p(x | c) on top of any Keras network `encoder`:

* `FlowModel(dist, context_encoder=encoder)` (or `with_context_encoder(flow, encoder)` for a
  zoo model): one model, trained with `fit(c, x)` on raw inputs c, with FlowModel's input
  checks, non-finite-step guard, `.keras` saving and a SavedModel whose signatures take c.
* `ConditionalDensity(flow)`: a Keras layer (features, x) -> log p(x | features) for the
  functional API, when the flow is one output among others of a bigger model. With
  `add_loss=True` (default) it adds the mean negative log-likelihood to the model's losses,
  so `model.compile(optimizer)` and `model.fit([c, x])` need no targets and no loss.

`ConditionedFlow` (from `FlowModel.distribution_at(c)`) is p(. | c) as a `tfd.Distribution`.
"""

from __future__ import annotations

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_flows import conditioning
from tfp_flows.flow_model import FlowModel

tfd = tfp.distributions


def with_context_encoder(flow: FlowModel, encoder: keras.layers.Layer, *,
                         name: str | None = None) -> FlowModel:
    """A new `FlowModel` of `flow`'s distribution with `encoder` in front of its context.

    `flow` is a conditional FlowModel whose conditioners take contexts of the encoder's output
    width (e.g. `models.build_maf(2, context_size=16)` for an encoder ending in Dense(16)).
    The new model shares the flow's weights; its context is the encoder's raw input. A
    context standardiser of `flow` (over the features) is not carried over: the encoder
    learns the scale of its own output. `flow.adapt(x)` (the data end) carries over.
    """
    if not isinstance(flow, FlowModel) or not flow.is_conditional:
        raise TypeError("with_context_encoder needs a conditional FlowModel (built with "
                        "context_size=k); got " + type(flow).__name__ + ".")
    return FlowModel(flow.distribution, context_encoder=encoder, bits_per_dim=flow.bits_per_dim,
                     name=name or f"{flow.name}_with_encoder")


@keras.saving.register_keras_serializable(package="tfp_flows")
class ConditionalDensity(keras.layers.Layer):
    """A Keras layer: (features, x) -> log p(x | features), from a conditional flow.

    ```python
    c_in, x_in = keras.Input((20, 2)), keras.Input((2,))
    features = encoder(c_in)                             # any Keras network
    log_prob = tfp_flows.layers.ConditionalDensity(flow)([features, x_in])
    model = keras.Model([c_in, x_in], log_prob)
    model.compile(optimizer="adam")                      # the NLL is added as a loss
    model.fit([c, x], epochs=20)
    ```

    Args:
      flow: a conditional `FlowModel` whose context is the features (its `context_shape`
        is the shape of one feature row).
      add_loss: add the mean negative log-likelihood of each call to the layer's losses
        (so the enclosing model trains by maximum likelihood without targets). Keras'
        own `fit` neither skips a non-finite step nor checks the data: use
        `FlowModel(..., context_encoder=...)` for FlowModel's guard and input checks.
    """

    def __init__(self, flow: FlowModel, *, add_loss: bool = True, **kwargs):
        if not isinstance(flow, FlowModel) or not flow.is_conditional:
            raise TypeError("ConditionalDensity needs a conditional FlowModel (built with "
                            "context_size=k); got " + type(flow).__name__ + ".")
        kwargs.setdefault("dtype", flow.dtype_policy.name)
        super().__init__(**kwargs)
        self.flow = flow
        self.add_nll_loss = bool(add_loss)
        self.built = True

    def call(self, inputs, training=None):
        features, x = inputs
        log_prob = self.flow._density(tf.cast(x, self.flow.distribution.dtype),
                                      tf.cast(features, self.flow.distribution.dtype),
                                      training=bool(training))
        if self.add_nll_loss:
            self.add_loss(-tf.reduce_mean(log_prob))
        return log_prob

    @property
    def metrics(self):
        # The flow's own training trackers ("loss", "nll") would shadow the enclosing
        # model's loss in fit()'s logs; they belong to FlowModel.fit only.
        return []

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[1][:1])

    def get_config(self):
        config = super().get_config()
        config.update(flow=keras.saving.serialize_keras_object(self.flow),
                      add_loss=self.add_nll_loss)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        flow = keras.saving.deserialize_keras_object(config.pop("flow"))
        return cls(flow, add_loss=config.pop("add_loss", True), **config)


class ConditionedFlow(tfd.Distribution):
    """p(. | c): a conditional `FlowModel` at fixed raw contexts c, as a `tfd.Distribution`.

    Batch shape: the leading (batch) shape of `context` (`[]` for a single context row of
    shape `context_shape`); event shape: the flow's. `sample`, `log_prob`, `prob` and
    `experimental_sample_and_log_prob` (one forward pass: log q(x) = log p_base(z) -
    log|det df/dz|, no inverse) work as for any TFP distribution, so it plugs into
    `tfd.Independent`, `tfd.MixtureSameFamily`, `tfp.vi` losses and the like. The context
    goes through the model's context standardiser and encoder at every call, inside the
    caller's `GradientTape`: gradients reach the flow's and the encoder's variables.
    """

    def __init__(self, model: FlowModel, context, validate_args=False,
                 name="ConditionedFlow"):
        parameters = dict(locals())
        if not isinstance(model, FlowModel) or not model.is_conditional:
            raise TypeError("ConditionedFlow needs a conditional FlowModel; for an "
                            "unconditional one, model.distribution is the distribution.")
        self._model = model
        context_shape = model.context_shape
        context = tf.convert_to_tensor(context, model.distribution.dtype)
        if context.shape.rank is None or context.shape.rank < context_shape.rank or \
                not context.shape[context.shape.rank - context_shape.rank:].is_compatible_with(
                    context_shape):
            raise ValueError(f"distribution_at: the context must have shape "
                             f"[..., {', '.join(map(str, context_shape.as_list()))}]; got "
                             f"{context.shape.as_list()}.")
        self._context = context
        self._batch_rank = context.shape.rank - context_shape.rank
        base = model.distribution.distribution
        super().__init__(dtype=model.distribution.dtype,
                         reparameterization_type=base.reparameterization_type,
                         validate_args=validate_args, allow_nan_stats=True,
                         parameters=parameters, name=name)

    @property
    def model(self) -> FlowModel:
        return self._model

    @property
    def context(self):
        return self._context

    def _batch_shape(self):
        return self._context.shape[:self._batch_rank]

    def _batch_shape_tensor(self):
        return tf.shape(self._context)[:self._batch_rank]

    def _event_shape(self):
        return self._model.event_shape

    def _event_shape_tensor(self):
        return tf.constant(self._model.event_shape.as_list(), tf.int32)

    def _flat_features(self):
        """Context rows [B, *context_shape] through the standardiser and encoder."""
        flat = tf.reshape(self._context, [-1, *self._model.context_shape.as_list()])
        return self._model._prepare_context(flat)

    def _bijector_kwargs(self, features):
        return conditioning.fill_template(self._model._routing, features)

    def _sample_and_log_prob(self, sample_shape, seed=None):
        flow = self._model.distribution
        batch = self._batch_shape_tensor()
        n = tf.reduce_prod(tf.cast(sample_shape, tf.int32))
        flat_batch = tf.reduce_prod(batch)
        z = flow.distribution.sample(tf.stack([n, flat_batch]), seed=seed)  # [n, B, *event]
        features = self._flat_features()
        z_rows = tf.reshape(z, [-1, *self._model.event_shape.as_list()])
        features = tf.reshape(tf.broadcast_to(features[tf.newaxis],
                                              tf.concat([[n], tf.shape(features)], 0)),
                              tf.concat([[-1], tf.shape(features)[1:]], 0))
        kwargs = self._bijector_kwargs(features)
        x = flow.bijector.forward(z_rows, **kwargs)
        log_det = flow.bijector.forward_log_det_jacobian(
            z_rows, event_ndims=flow.distribution.event_shape.rank, **kwargs)
        log_prob = flow.distribution.log_prob(z_rows) - log_det
        out_shape = tf.concat([sample_shape, batch], 0)
        x = tf.reshape(x, tf.concat([out_shape, tf.shape(x)[1:]], 0))
        return x, tf.reshape(log_prob, out_shape)

    def _sample_n(self, n, seed=None):
        return self._sample_and_log_prob([n], seed=seed)[0]

    def _log_prob(self, x):
        event_shape = self._model.event_shape
        x = tf.convert_to_tensor(x, self.dtype)
        sample_batch = tf.shape(x)[:tf.rank(x) - event_shape.rank]
        features = self._flat_features()  # [B, k]
        batch = self._batch_shape_tensor()
        # Broadcast x's leading shape against the batch shape, then score row by row.
        full = tf.broadcast_dynamic_shape(sample_batch, batch)
        x_rows = tf.reshape(tf.broadcast_to(x, tf.concat([full, event_shape.as_list()], 0)),
                            [-1, *event_shape.as_list()])
        feature_shape = tf.shape(features)[1:]
        batched = tf.reshape(features, tf.concat([batch, feature_shape], 0))
        feature_rows = tf.reshape(
            tf.broadcast_to(batched, tf.concat([full, feature_shape], 0)),
            tf.concat([[-1], feature_shape], 0))
        flow = self._model.distribution
        log_prob = flow.log_prob(x_rows, bijector_kwargs=self._bijector_kwargs(feature_rows))
        return tf.reshape(log_prob, full)

    def _default_event_space_bijector(self):
        return self._model.distribution.experimental_default_event_space_bijector()
