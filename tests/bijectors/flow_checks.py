"""Autodiff checks shared by the tests of the Planar/Sylvester/Glow/NICE bijectors.

`measure(bij, x, event_ndims)` returns the largest |fldj - log|det J_autodiff||, the
largest |inverse(forward(x)) - x| and |ildj(y) + fldj(x)|. TFP caches forward/inverse
pairs, so the inverse is fed a fresh copy of y (tf.identity) to run the real inverse.
"""

import numpy as np
import tensorflow as tf


def autodiff_log_det(bij, x, event_ndims):
    """log|det ∂forward/∂x| per example via the batch Jacobian (flattened events)."""
    x = tf.convert_to_tensor(x)
    batch = x.shape[:x.shape.rank - event_ndims]
    flat = tf.reshape(x, [-1, int(np.prod(x.shape[len(batch):]))])
    with tf.GradientTape() as tape:
        tape.watch(flat)
        y = bij.forward(tf.reshape(flat, x.shape))
        y_flat = tf.reshape(y, [tf.shape(flat)[0], -1])
    jac = tape.batch_jacobian(y_flat, flat)
    _, logdet = tf.linalg.slogdet(jac)
    return tf.reshape(logdet, batch), y


def measure(bij, x, event_ndims):
    """(log-det error, round-trip error, ildj error), each a max abs error over the batch."""
    x = tf.convert_to_tensor(x)
    logdet, y = autodiff_log_det(bij, x, event_ndims)
    fldj = bij.forward_log_det_jacobian(x, event_ndims=event_ndims)
    x_back = bij.inverse(tf.identity(y))
    ildj = bij.inverse_log_det_jacobian(tf.identity(y), event_ndims=event_ndims)
    for t in (y, fldj, x_back, ildj):
        assert np.all(np.isfinite(t.numpy())), f"non-finite output {t}"
    return (float(tf.reduce_max(tf.abs(fldj - logdet))),
            float(tf.reduce_max(tf.abs(x_back - x))),
            float(tf.reduce_max(tf.abs(ildj + fldj))))
