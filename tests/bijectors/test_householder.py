"""Householder reflections: orthogonal, self-inverse per reflection, log-det exactly 0."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_flows.bijectors import Householder
from tfp_flows.testing import check_bijector


def test_householder_passes_check_bijector_in_float32_and_float64(rng):
    x = rng.standard_normal([16, 3])
    check_bijector(lambda dtype: Householder.trainable(3, seed=1, dtype=dtype,
                                                       num_reflections=4), x)


def test_matches_the_product_of_reflection_matrices_and_is_orthogonal(rng):
    v = rng.standard_normal([3, 4])
    bij = Householder(v)
    matrix = np.eye(4)
    for k in range(3):
        u = v[k] / np.linalg.norm(v[k])
        matrix = (np.eye(4) - 2 * np.outer(u, u)) @ matrix
    x = rng.standard_normal([5, 4])
    np.testing.assert_allclose(bij.forward(x).numpy(), x @ matrix.T, atol=1e-12)
    np.testing.assert_allclose(matrix @ matrix.T, np.eye(4), atol=1e-12)
    assert np.linalg.det(matrix) == pytest.approx(-1.0)  # three reflections
    assert float(bij.forward_log_det_jacobian(x, event_ndims=1)) == 0.0


def test_zero_vector_and_bad_shape_are_refused():
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be nonzero"):
        Householder(np.zeros([1, 2]), validate_args=True).forward(np.ones([1, 2]))
    with pytest.raises(ValueError, match="must be \\[..., K, D\\]"):
        Householder(np.ones([2]))
    with pytest.raises(ValueError, match="num_reflections must be a positive integer"):
        Householder.trainable(2, num_reflections=0)
