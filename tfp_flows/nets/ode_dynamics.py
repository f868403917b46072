"""ODEDynamics: the time-conditioned network dx/dt = f(t, x) of a continuous flow (FFJORD).

A continuous normalizing flow (Chen et al. 2018; Grathwohl et al. 2019, FFJORD) moves a point
along dx/dt = f(t, x) from t = 0 to t = 1; any Lipschitz f gives an invertible map, so f is
a free-form MLP. Time enters every layer as in FFJORD's "concatsquash" layers: a gate and a
shift that are functions of t,

    h_{l+1} = act( (W_l h_l + b_l) * sigmoid(g_l t + c_l) + s_l t ),

with vectors g_l, c_l, s_l of the layer's width (the last layer has no activation). The
output kernel and time shift start at zero, so a fresh flow is the identity map. A smooth
activation (tanh, softplus) keeps the dynamics differentiable, which the ODE solver and the
trace of the Jacobian need.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
from keras import ops

from tfp_flows.nets.dense_stack import add_dense_stack_weights


@keras.saving.register_keras_serializable(package="tfp_flows")
class ODEDynamics(keras.layers.Layer):
    """f(t, x): (scalar time, state [..., D]) -> time derivative [..., D].

    Called as `f(t, x)`, the order `tfb.FFJORD` uses for its `state_time_derivative_fn`.

    Args:
      hidden_units: widths of the hidden layers.
      activation: Keras activation of the hidden layers; a smooth one (default tanh).
      zero_init_output: start with f = 0 (the flow is the identity at initialisation).
      kernel_initializer: initializer of the kernels W_l (the output one when not zeroed).
    """

    def __init__(self, hidden_units: Sequence[int] = (64, 64), activation: str | Callable = "tanh",
                 zero_init_output: bool = True,
                 kernel_initializer: str | Callable = "glorot_uniform", **kwargs) -> None:
        super().__init__(**kwargs)
        self.hidden_units = [int(u) for u in hidden_units]
        if any(u <= 0 for u in self.hidden_units):
            raise ValueError(f"hidden_units must be positive; got {list(hidden_units)}.")
        self.activation = keras.activations.get(activation)
        self.zero_init_output = bool(zero_init_output)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def __call__(self, time, state, **kwargs):
        return super().__call__(state, time=time, **kwargs)

    def build(self, input_shape):
        event_size = input_shape[-1]
        if event_size is None:
            raise ValueError("ODEDynamics needs a known last dimension (the event size); got "
                             f"input shape {tuple(input_shape)}.")
        sizes = [int(event_size), *self.hidden_units, int(event_size)]
        self.kernels, self.biases = add_dense_stack_weights(
            self, sizes, self.kernel_initializer, self.zero_init_output)
        self.gate_weights, self.gate_biases, self.time_shifts = [], [], []
        for i, units in enumerate(sizes[1:]):
            self.gate_weights.append(self.add_weight(shape=(units,), initializer="zeros",
                                                     name=f"gate_weight_{i}"))
            self.gate_biases.append(self.add_weight(shape=(units,), initializer="zeros",
                                                    name=f"gate_bias_{i}"))
            self.time_shifts.append(self.add_weight(shape=(units,), initializer="zeros",
                                                    name=f"time_shift_{i}"))

    def call(self, state, time):
        t = ops.cast(time, self.compute_dtype)
        h = state
        last = len(self.kernels) - 1
        for i in range(len(self.kernels)):
            gate = ops.sigmoid(self.gate_weights[i] * t + self.gate_biases[i])
            h = (ops.matmul(h, self.kernels[i]) + self.biases[i]) * gate + self.time_shifts[i] * t
            if i < last:
                h = self.activation(h)
        return h

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(hidden_units=self.hidden_units,
                      activation=keras.activations.serialize(self.activation),
                      zero_init_output=self.zero_init_output,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
