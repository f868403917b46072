"""Amortised flow parameters: a network maps a context h to the parameters of L flow layers.

Used for conditional flows p(x | c) built from planar, radial or Sylvester layers and for
the flow posteriors q(z | x) of a VAE (van den Berg et al. 2018, §4.1: "the parameters of
the flow are produced by the encoder"): every context row gets its own flow.

`AmortizedFlowParameters(flow_kind, event_size, num_layers, context_size)` is a Keras 3
layer: h [..., context_size] -> a list of L dicts of *free* (unconstrained) parameter
tensors with batch shape [...], in the form the bijectors take them, so the constraints
that make each layer invertible are the bijectors' own code, applied to batched tensors:

* "planar": w, u [..., D], b [...]; `bijectors.Planar` uses û (wᵀû > -1, `planar_u_hat`).
* "radial": center [..., D], alpha_free [...], beta_free [...]; alpha is the image of
  alpha_free under `Radial`'s own constraining bijector for alpha (a softplus > 0) and
  beta_free is Radial's `beta_unconstrained` (beta = -alpha + softplus(beta_free) > -alpha).
* "sylvester-orthogonal", "sylvester-householder", "sylvester-triangular": r, r_tilde
  [..., M, M] (upper triangles filled from M(M+1)/2 outputs each; `Sylvester` puts tanh on
  the diagonals, so r_ii r̃_ii ∈ (-1, 1)), bias [..., M] and q_params ([..., D, M] for
  Björck orthogonalisation, [..., K, D] Householder vectors, none for triangular).

With `location_scale=True` the outputs also hold `loc` and `log_scale` [..., D] of a
diagonal affine map applied first (the Gaussian base q0(z | x) = N(loc, exp(log_scale)²)
of a VAE posterior, or a conditional shift of p(x | c)).

Initialisation: the output layer's kernel and bias start at zero. `call(h, offset=c)` adds
a constant vector c [num_outputs] to the output; `bijectors.AmortizedFlow` passes the
identity parameters of each bijector's own `trainable(...)` constructor (planar û = 0,
radial beta = 0, Sylvester R = 0; loc = 0, log_scale = 0), so a fresh amortised flow is the
identity for every context and gradients reach every output. (The bijectors own those
values; this network, below them, only knows the output layout.)
"""

import keras
import numpy as np
from keras import ops

from tfp_flows.nets.dense_stack import add_dense_stack_weights

FLOW_KINDS = ("planar", "radial", "sylvester-orthogonal", "sylvester-householder",
              "sylvester-triangular")


def upper_triangle_indices(m):
    """Gather indices [m, m] that fill an upper-triangular matrix from a vector.

    Entry (i, j), i <= j, takes element k + 1 of [0, v_0, ..., v_{T-1}] (row-major order of
    np.triu_indices(m)); the lower triangle takes the leading 0.
    """
    index = np.zeros([m, m], np.int32)
    rows, cols = np.triu_indices(m)
    index[rows, cols] = np.arange(1, len(rows) + 1)
    return index


def fill_upper_triangle(vector, m):
    """[..., m(m+1)/2] -> [..., m, m] upper triangular (a constant gather: XLA-friendly)."""
    padded = ops.concatenate([ops.zeros_like(vector[..., :1]), vector], axis=-1)
    flat = ops.take(padded, upper_triangle_indices(m).reshape(-1), axis=-1)
    return ops.reshape(flat, (*ops.shape(vector)[:-1], m, m))


def _parameter_shapes(flow_kind, d, m, k):
    """{name: (output shape of one layer's free parameter)} in output order."""
    if flow_kind == "planar":
        return {"w": (d,), "u": (d,), "b": ()}
    if flow_kind == "radial":
        return {"center": (d,), "alpha_free": (), "beta_free": ()}
    shapes = {"r": (m * (m + 1) // 2,), "r_tilde": (m * (m + 1) // 2,), "bias": (m,)}
    if flow_kind == "sylvester-orthogonal":
        shapes["q_params"] = (d, m)
    elif flow_kind == "sylvester-householder":
        shapes["q_params"] = (k, d)
    return shapes


@keras.saving.register_keras_serializable(package="tfp_flows")
class AmortizedFlowParameters(keras.layers.Layer):
    """Context h [..., context_size] -> free parameters of `num_layers` flow layers.

    Args:
      flow_kind: one of FLOW_KINDS, or None for no flow layers (then only the
        location-scale map, which needs `location_scale=True`).
      event_size: D, the dimension of the flow.
      num_layers: L, the number of flow layers.
      context_size: size of the context vector h.
      hidden_units: widths of an optional MLP between h and the output layer (default:
        none, a linear map from h as in van den Berg et al.'s VAEs).
      activation: activation of that MLP.
      location_scale: also output loc and log_scale [..., D] of a diagonal affine map
        applied before the flow layers.
      num_hidden: M of the Sylvester layers (default D; "sylvester-triangular" needs D).
      num_reflections: K Householder vectors per layer (default D).
      seed: seed of the kernels and of the identity start's random parts.

    `call(h)` returns a dict: "layers" a list of L dicts of free parameters, and, with
    `location_scale`, "loc" and "log_scale"; every tensor has the batch shape of h.
    """

    def __init__(self, flow_kind, event_size, num_layers, context_size, hidden_units=(),
                 activation="relu", location_scale=False, num_hidden=None,
                 num_reflections=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if flow_kind is not None and flow_kind not in FLOW_KINDS:
            raise ValueError(f"flow_kind must be one of {FLOW_KINDS} or None; got "
                             f"{flow_kind!r}.")
        self.flow_kind = flow_kind
        self.event_size = int(event_size)
        self.num_layers = 0 if flow_kind is None else int(num_layers)
        self.context_size = int(context_size)
        if self.event_size < 1 or self.context_size < 1 or self.num_layers < 0:
            raise ValueError(f"event_size and context_size must be >= 1 and num_layers >= 0; "
                             f"got {event_size}, {context_size}, {num_layers}.")
        if self.num_layers == 0 and not location_scale:
            raise ValueError("AmortizedFlowParameters with no flow layers needs "
                             "location_scale=True, or it has nothing to produce.")
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation = keras.activations.get(activation)
        self.location_scale = bool(location_scale)
        self.num_hidden = self.event_size if num_hidden is None else int(num_hidden)
        self.num_reflections = self.event_size if num_reflections is None else int(
            num_reflections)
        if flow_kind == "sylvester-triangular" and self.num_hidden != self.event_size:
            raise ValueError(f"sylvester-triangular needs num_hidden = event_size "
                             f"({self.event_size}); got {self.num_hidden}.")
        if not 1 <= self.num_hidden <= self.event_size:
            raise ValueError(f"num_hidden must be in 1..event_size ({self.event_size}); got "
                             f"{self.num_hidden}.")
        self.seed = seed
        self._shapes = ({} if flow_kind is None else _parameter_shapes(
            flow_kind, self.event_size, self.num_hidden, self.num_reflections))
        self._layer_size = sum(int(np.prod(s)) for s in self._shapes.values())

    @property
    def num_outputs(self):
        """Length of the flat parameter vector per context row."""
        return self.num_layers * self._layer_size + (2 * self.event_size
                                                     if self.location_scale else 0)

    def build(self, input_shape):
        if input_shape[-1] is not None and input_shape[-1] != self.context_size:
            raise ValueError(f"AmortizedFlowParameters was built for context_size="
                             f"{self.context_size} but got a context of shape "
                             f"{list(input_shape)}.")
        init = keras.initializers.GlorotUniform(seed=self.seed)
        sizes = [self.context_size, *self.hidden_units, self.num_outputs]
        self.kernels, self.biases = add_dense_stack_weights(self, sizes, init,
                                                            zero_init_output=True)

    @property
    def parameter_shapes(self):
        """{name: shape} of one flow layer's free parameters, in output order (r and
        r_tilde as their M(M+1)/2 upper-triangle entries)."""
        return dict(self._shapes)

    def call(self, context, offset=None):
        """The free parameters for `context`; `offset`: an optional constant [num_outputs]
        added to the flat output before it is split (the identity start)."""
        h = ops.cast(context, self.compute_dtype)
        last = len(self.kernels) - 1
        for i, (kernel, bias) in enumerate(zip(self.kernels, self.biases, strict=True)):
            h = ops.matmul(h, kernel) + bias
            if i < last:
                h = self.activation(h)
        if offset is not None:
            h = h + ops.cast(offset, self.compute_dtype)
        batch = ops.shape(h)[:-1]
        out, offset = {}, 0

        def take(size):
            nonlocal offset
            piece = h[..., offset:offset + size]
            offset += size
            return piece

        if self.location_scale:
            out["loc"] = take(self.event_size)
            out["log_scale"] = take(self.event_size)
        layers = []
        m = self.num_hidden
        for _ in range(self.num_layers):
            params = {}
            for name, shape in self._shapes.items():
                piece = take(int(np.prod(shape)))
                if name in ("r", "r_tilde"):
                    params[name] = fill_upper_triangle(piece, m)
                else:
                    params[name] = ops.reshape(piece, (*batch, *shape))
            layers.append(params)
        out["layers"] = layers
        return out

    def get_config(self):
        config = super().get_config()
        config.update(flow_kind=self.flow_kind, event_size=self.event_size,
                      num_layers=self.num_layers, context_size=self.context_size,
                      hidden_units=self.hidden_units,
                      activation=keras.activations.serialize(self.activation),
                      location_scale=self.location_scale, num_hidden=self.num_hidden,
                      num_reflections=self.num_reflections, seed=self.seed)
        return config
