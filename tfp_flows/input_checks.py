"""The input checks of `FlowModel`'s fit, evaluate and predict: data, (context, x) pairs,
sample weights and validation data, checked on the host before Keras sees them, so a mistake
stops with one `FlowDataError` or `ValueError` naming the rows instead of a failure inside a
compiled step."""

import numpy as np
import tensorflow as tf

from tfp_flows import data_checks


class InputChecks:
    """Mixin of `FlowModel`: uses its `_event_shape`, `_context_shape`, `_flow_dtype`,
    `_distribution` and `_routing` (None for an unconditional model)."""

    def _check_inputs(self, x, what):
        """Check data for an unconditional model: x alone."""
        if x is None:
            return None
        if isinstance(x, tf.data.Dataset):
            data_checks.check_dataset_spec(self._without_weights(x, 2, what), self._event_shape,
                                           f"{what} (a tf.data.Dataset)")
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

    @staticmethod
    def _without_weights(dataset, size, what):
        """The dataset without its sample weights (the last of `size` elements: (x, w), or
        (context, x, w)), for the spec check; the weights' own spec is checked here."""
        spec = dataset.element_spec
        if not isinstance(spec, tuple) or len(spec) != size:
            return dataset
        weights = spec[-1]
        if not isinstance(weights, tf.TensorSpec) or not (
                weights.dtype.is_floating or weights.dtype.is_integer) \
                or weights.shape.rank not in (None, 1):
            raise data_checks.FlowDataError(
                f"{what} (a tf.data.Dataset) yields {size} elements; the last must be the "
                f"sample weights, numbers of shape [batch], not {weights}.")
        return dataset.map(lambda *element: element[0] if size == 2 else element[:-1])

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
            data_checks.check_dataset_spec(self._without_weights(context, 3, what),
                                           self._event_shape, f"{what} (a tf.data.Dataset)",
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

    def _check_sample_weight(self, sample_weight, rows, what):
        """Sample weights as a float array of one non-negative finite number per row."""
        if sample_weight is None:
            return None
        if isinstance(sample_weight, tf.Tensor):
            sample_weight = sample_weight.numpy()
        w = np.asarray(sample_weight)
        if w.dtype == object or w.dtype.kind not in "biuf":
            raise data_checks.FlowDataError(
                f"{what}: sample_weight holds non-numeric values (dtype {w.dtype}); give one "
                f"non-negative number per row.")
        if w.ndim == 2 and w.shape[1] == 1:
            w = w[:, 0]
        if w.ndim != 1 or (rows is not None and len(w) != rows):
            raise data_checks.FlowDataError(
                f"{what}: sample_weight has shape {list(w.shape)}, but x has {rows} rows; give "
                f"one weight per row, shape [{rows}].")
        w = w.astype(self._flow_dtype.as_numpy_dtype)
        for bad, kind in ((~np.isfinite(w), "NaN or Inf"), (w < 0, "negative")):
            if bad.any():
                raise data_checks.FlowDataError(
                    f"{what}: sample_weight has {kind} values in rows "
                    f"{data_checks._describe_rows(np.flatnonzero(bad))}; weights must be "
                    f"finite and >= 0.")
        if not w.any():
            raise data_checks.FlowDataError(f"{what}: every sample_weight is 0, so there is "
                                            "nothing to fit or evaluate.")
        return w

    @staticmethod
    def _rows(x):
        return len(x) if isinstance(x, (np.ndarray, tf.Tensor, list)) else None

    def _weighted(self, x, y, sample_weight, what):
        """(x, y, sample_weight) for Keras' fit/evaluate with checked weights. Keras drops
        the weights of data without targets, so an unconditional model gets them as y."""
        if sample_weight is None:
            return x, y, None
        rows = self._rows(x if self._routing is None else y)
        if rows is None:
            raise ValueError(f"{what}: sample_weight goes with in-memory arrays; a "
                             f"tf.data.Dataset or generator yields the weights itself, as "
                             f"{'(x, w)' if self._routing is None else '(context, x, w)'}.")
        w = self._check_sample_weight(sample_weight, rows, what)
        if self._routing is None:
            return x, w, None
        return x, y, w

    def _checked_validation(self, validation_data):
        """validation_data checked; weights (Keras' (x, None, w), or (context, x, w) when
        conditional) are handed over as the data's own weights."""
        if self._routing is None:
            if isinstance(validation_data, (tuple, list)) and len(validation_data) == 3 \
                    and validation_data[1] is None and validation_data[2] is not None:
                x = self._check_inputs(validation_data[0], "validation_data")
                return x, self._check_sample_weight(validation_data[2], self._rows(x),
                                                    "validation_data")
            return self._check_inputs(validation_data, "validation_data")
        if isinstance(validation_data, tf.data.Dataset):
            self._check_pair(validation_data, None, "validation_data")
            return validation_data
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data of a conditional FlowModel is a pair "
                             "(context, x), a triple (context, x, sample_weight) or a "
                             "tf.data.Dataset of those.")
        pair = self._check_pair(*validation_data[:2], "validation_data")
        if len(validation_data) == 2 or validation_data[2] is None:
            return pair
        return (*pair, self._check_sample_weight(validation_data[2], self._rows(pair[1]),
                                                  "validation_data"))

    def _checked(self, x, y, what):
        """(inputs, targets) for Keras: (x, None), or (context, x) when conditional."""
        if self._routing is None:
            if y is not None:
                raise ValueError(f"FlowModel is unconditional: {what}(x) takes the data "
                                 "alone, no targets.")
            return self._check_inputs(x, "x"), None
        return self._check_pair(x, y, what)
