"""LipschitzMLP: a Keras 3 MLP R^d -> R^d with Lipschitz constant <= c < 1.

The residual block g of an invertible residual network (Behrmann et al. 2019, i-ResNet;
Chen et al. 2019, Residual Flows) must be a contraction. Spectral normalisation (Miyato et
al. 2018) rescales each weight matrix V_i of an L-layer MLP to

    W_i = V_i * min(1, c^(1/L) / sigma_max(V_i)),

so that ||W_i||_2 <= c^(1/L); with 1-Lipschitz activations the composition has
Lip(g) <= prod_i ||W_i||_2 <= c. Unlike power-iteration estimates (a lower bound of
sigma_max that lags behind the weights), sigma_max is computed exactly from the eigenvalues
of the Gram matrix V^T V (or V V^T, the smaller one), so the bound holds after every
update and every call of the layer is the same deterministic function of its weights (the
residual flow's forward and its fixed-point inverse see the same g). Gradients flow through
the normalisation (d sigma_max / dV = u v^T).

Conditional residual flows: with `context_size=k` a context c enters the first layer
through its own kernel U, h1 = a(x W_1 + c U + b_1). U is NOT normalised: the bound is on x
only. For a fixed c the term c U is a constant bias, so g(., c) is the same normalised MLP
with another first bias and Lip_x(g(., c)) <= prod_i ||W_i||_2 <= lipschitz_constant for
every c; the residual block x -> x + g(x, c) is invertible in x for each context, which is
all a conditional flow p(x | c) needs. (How g varies with c is unconstrained.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import tensorflow as tf
from keras import ops

from tfp_flows.nets.dense_stack import add_dense_stack_weights
from tfp_flows.nets.made import check_context


def lipswish(x):
    """LipSwish (Chen et al. 2019): x sigmoid(x) / 1.1, 1-Lipschitz and smooth."""
    return x * ops.sigmoid(x) / 1.1


def _lipswish_derivative(x):
    s = ops.sigmoid(x)
    return (s + x * s * (1.0 - s)) / 1.1


def _elu_derivative(x):
    return ops.where(x > 0, ops.ones_like(x), ops.exp(ops.minimum(x, 0.0)))


def _tanh_derivative(x):
    return 1.0 - ops.square(ops.tanh(x))


_ACTIVATIONS = {"lipswish": lipswish, "elu": ops.elu, "tanh": ops.tanh}
_DERIVATIVES = {"lipswish": _lipswish_derivative, "elu": _elu_derivative,
                "tanh": _tanh_derivative}


def spectral_norm_squared(kernel):
    """sigma_max(kernel)^2, exact: the top eigenvalue of the smaller Gram matrix."""
    fan_in, fan_out = kernel.shape
    if fan_in <= fan_out:
        gram = tf.matmul(kernel, kernel, transpose_b=True)
    else:
        gram = tf.matmul(kernel, kernel, transpose_a=True)
    return tf.maximum(tf.reduce_max(tf.linalg.eigvalsh(gram)), 0.0)


def spectral_norm(kernel):
    """Largest singular value of a 2-D kernel, exact."""
    return tf.sqrt(spectral_norm_squared(kernel))


@keras.saving.register_keras_serializable(package="tfp_flows")
class LipschitzMLP(keras.layers.Layer):
    """x [..., d] -> g(x) [..., d] with Lip(g) <= lipschitz_constant < 1.

    Args:
      event_size: d, the input and output size.
      hidden_units: widths of the hidden layers.
      activation: 'lipswish' (default), 'elu' or 'tanh': all 1-Lipschitz.
      lipschitz_constant: c in (0, 1); each of the L layers is normalised to spectral
        norm <= c^(1/L).
      kernel_initializer: initializer of the hidden kernels.
      zero_init_output: start the last layer at zero, so g = 0 and the residual flow starts
        at the identity. Default True.
      context_size: size of an optional context vector c (conditional flows), joined to the
        first layer by an unconstrained kernel (see the module docstring: the Lipschitz
        bound holds in x for every c). Call as `g(x, conditional_input=c)`.
    """

    def __init__(self, event_size: int, hidden_units: Sequence[int] = (64, 64),
                 activation: str | Callable = "lipswish", lipschitz_constant: float = 0.9,
                 kernel_initializer: str | Callable = "glorot_uniform",
                 zero_init_output: bool = True, context_size: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < float(lipschitz_constant) < 1.0:
            raise ValueError(f"lipschitz_constant must lie in (0, 1) for an invertible "
                             f"residual block; got {lipschitz_constant}.")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)} (1-Lipschitz); "
                             f"got {activation!r}.")
        self.event_size = int(event_size)
        self.hidden_units = [int(u) for u in hidden_units]
        self.activation_name = activation
        self.activation = _ACTIVATIONS[activation]
        self.lipschitz_constant = float(lipschitz_constant)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.zero_init_output = bool(zero_init_output)
        self.context_size = None if context_size is None else int(context_size)

    def build(self, input_shape=None):
        if input_shape is not None and input_shape[-1] not in (None, self.event_size):
            raise ValueError(f"LipschitzMLP was built for event_size={self.event_size} but got "
                             f"inputs with {input_shape[-1]} features.")
        sizes = [self.event_size, *self.hidden_units, self.event_size]
        self.kernels, self.biases = add_dense_stack_weights(
            self, sizes, self.kernel_initializer, self.zero_init_output)
        self.context_kernel = None
        if self.context_size:
            output_only = not self.hidden_units  # then U feeds g's output: zero like W_L
            init = "zeros" if output_only and self.zero_init_output else self.kernel_initializer
            self.context_kernel = self.add_weight(shape=(self.context_size, sizes[1]),
                                                  initializer=init, name="context_kernel")
        self.built = True

    @property
    def per_layer_bound(self):
        return self.lipschitz_constant ** (1.0 / (len(self.hidden_units) + 1))

    def normalized_kernels(self):
        """The spectrally normalised kernels W_i actually used, ||W_i||_2 <= c^(1/L)."""
        bound = self.per_layer_bound
        out = []
        for kernel in self.kernels:
            v = ops.convert_to_tensor(kernel)
            sigma2 = spectral_norm_squared(v)
            over = sigma2 > bound * bound
            # No sqrt of sigma^2 itself: its gradient at 0 (a zero-initialised kernel) is
            # infinite and would turn the unused branch of where() into NaN.
            scale = tf.where(over, bound * tf.math.rsqrt(tf.where(over, sigma2,
                                                                  tf.ones_like(sigma2))),
                             tf.ones_like(sigma2))
            out.append(v * scale)
        return out

    def call(self, x, conditional_input=None):
        return self.call_with_kernels(x, self.normalized_kernels(), conditional_input)

    def context_bias(self, context):
        """c U, the context's (unconstrained) addition to the first pre-activation, or 0."""
        context = check_context(self, context)
        return 0.0 if context is None else ops.matmul(context, self.context_kernel)

    def call_with_kernels(self, x, kernels, context=None):
        """g(x) (or g(x, c)) with precomputed `normalized_kernels()` (reused across
        fixed-point steps)."""
        h = x
        last = len(kernels) - 1
        first_bias = self.context_bias(context)
        for i, (w, b) in enumerate(zip(kernels, self.biases, strict=True)):
            h = ops.matmul(h, w) + b
            if i == 0:
                h = h + first_bias
            if i < last:
                h = self.activation(h)
        return h

    def call_and_jacobian(self, x, kernels=None, context=None):
        """(g(x), J_g(x)) for x [n, d] (and context [n, k]): J [n, d, d] = dg_i/dx_j in
        closed form.

        With h_i = a(h_{i-1} W_i + b_i), the chain rule gives J^T = W_1 D_1 W_2 ... D_{L-1} W_L,
        D_i = diag(a'(pre-activation i)); no autodiff, so gradients of log det(I + J) are
        first-order and the graph stays small (and XLA-friendly).
        """
        if kernels is None:
            kernels = self.normalized_kernels()
        derivative = _DERIVATIVES[self.activation_name]
        h = x
        jt = None  # J^T accumulated as [n, d, units]
        last = len(kernels) - 1
        first_bias = self.context_bias(context)
        for i, (w, b) in enumerate(zip(kernels, self.biases, strict=True)):
            pre = ops.matmul(h, w) + b
            if i == 0:
                pre = pre + first_bias
            jt = w[None] if jt is None else ops.matmul(jt, w)
            if i < last:
                jt = jt * derivative(pre)[:, None, :]
                h = self.activation(pre)
            else:
                h = pre
        jt = ops.broadcast_to(jt, (ops.shape(x)[0], self.event_size, self.event_size))
        return h, ops.transpose(jt, (0, 2, 1))

    def lipschitz_bound(self):
        """Upper bound prod_i ||W_i||_2 of Lip(g) in x for the current weights (<= c), for
        every context."""
        bound = tf.ones([], self.compute_dtype)
        for w in self.normalized_kernels():
            bound = bound * spectral_norm(w)
        return bound

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(event_size=self.event_size, hidden_units=self.hidden_units,
                      activation=self.activation_name,
                      lipschitz_constant=self.lipschitz_constant,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
                      zero_init_output=self.zero_init_output, context_size=self.context_size)
        return config
