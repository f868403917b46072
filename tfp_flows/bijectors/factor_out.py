"""Factor-out / multi-scale split (Dinh, Sohl-Dickstein & Bengio, 2017, "RealNVP",
section 3.6; Glow's multi-scale architecture, Kingma & Dhariwal 2018, section 3).

In the data → latent direction RealNVP splits the channels of an activation h into
(h_a, h_b) after each scale: h_b is "factored out" (it goes to the latent unchanged) and
only h_a goes on through the deeper, coarser scales g. As a TFP bijector (forward =
latent → data) this is

    forward([z_a, z_b]) = [g(z_a), z_b],     log-det = log|det ∂g/∂z_a|,

split along the last (channel) axis, with `bijector` = g, the whole rest of the
multi-scale flow acting on the kept channels. g must keep the event shape of its part
(put a squeeze inside it as `Chain([Invert(Squeeze()), steps, Squeeze()])`), so the
latent has the data's shape and the base is N(0, I) over it; the factored-out channels
are never transformed again, which halves the work at each deeper scale.

Works on image events [H, W, C] (`event_ndims=3`, the default) and on vectors [D]
(`event_ndims=1`). Parameter-free apart from `bijector`'s, so no `trainable`.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors


class FactorOut(tfb.Bijector):
    """[z_a, z_b] ↦ [bijector(z_a), z_b] along the last axis (see the module docstring).

    Args:
      bijector: g, applied to the first `num_kept` channels; must preserve their shape.
      num_kept: channels passed to g (default: half, rounded up, of the event's last axis).
      event_ndims: event rank: 3 for channels-last images, 1 for vectors.
      validate_args: Python bool.
      name: name of the bijector.

    Accurate for (float64; tests/bijectors/test_properties.py: finite, round trip within 1e-7
    relative, log-det = autodiff within 1e-6) the wrapped bijector's ranges (tested with
    NICEScaling, |log_scale| <= 5, |x| <= 100). Domain: that of the wrapped bijector on the
    kept part; the rest passes unchanged.
    """

    def __init__(self, bijector: tfb.Bijector, num_kept: int | None = None, event_ndims: int = 3,
                 validate_args: bool = False, name: str = "factor_out") -> None:
        parameters = dict(locals())
        self._bijector = bijector
        self._num_kept = None if num_kept is None else int(num_kept)
        self._event_ndims = int(event_ndims)
        with tf.name_scope(name) as name:
            super().__init__(forward_min_event_ndims=self._event_ndims,
                             validate_args=validate_args, dtype=bijector.dtype,
                             parameters=parameters, name=name)

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    @property
    def bijector(self):
        return self._bijector

    def _split(self, x):
        c = x.shape[-1]
        if c is None:
            raise ValueError("FactorOut needs a statically known number of channels.")
        k = (c + 1) // 2 if self._num_kept is None else self._num_kept
        if not 0 < k <= c:
            raise ValueError(f"FactorOut: num_kept={k} with {c} channels.")
        return x[..., :k], x[..., k:]

    def _forward(self, x):
        a, b = self._split(x)
        return tf.concat([self._bijector.forward(a), b], axis=-1)

    def _inverse(self, y):
        a, b = self._split(y)
        return tf.concat([self._bijector.inverse(a), b], axis=-1)

    def _forward_log_det_jacobian(self, x):
        a, _ = self._split(x)
        return self._bijector.forward_log_det_jacobian(a, event_ndims=self._event_ndims)

    def _inverse_log_det_jacobian(self, y):
        a, _ = self._split(y)
        return self._bijector.inverse_log_det_jacobian(a, event_ndims=self._event_ndims)

    def initialize_inner(self, fn, y):
        """Run fn(bijector, y_a) on the kept part (used by `initialize_actnorms`)."""
        a, b = self._split(tf.convert_to_tensor(y))
        return tf.concat([fn(self._bijector, a), b], axis=-1)
