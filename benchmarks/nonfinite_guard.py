"""What FlowModel's non-finite update guard costs per training step.

    .venv/bin/python benchmarks/nonfinite_guard.py [--dims 2 16] [--batch 256] [--repeats 5]

`FlowModel.train_step` snapshots the trainable variables and the optimizer state, applies the
update, checks the weights for NaN/Inf and writes the snapshot back when the check
fails (all in the compiled step; without a strategy a tf.cond skips the writes on a good
step). This times `fit()` steps of the zoo's MAF
(`models.build("maf", D, base="normal")`: 5 layers, MADE [64, 64]; Adam, jit_compile=True,
steps_per_execution=20, tf.data batches) with the guard and with a plain apply (the same
class, `_apply_or_undo` replaced by `optimizer.apply_gradients`), alternating the two, and
prints the median ms/step of each and their ratio.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_flows import FlowModel, models  # noqa: E402


class UnguardedFlowModel(FlowModel):
    """FlowModel whose step applies the update without the snapshot, check and undo."""

    def _apply_or_undo(self, grads, variables, ok):
        self.optimizer.apply_gradients(zip(grads, variables, strict=True))
        return ok


def build(guarded, dims):
    model = models.build("maf", dims, seed=0, base="normal")  # as the table was measured
    if not guarded:
        model = UnguardedFlowModel(model.distribution)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True,
                  steps_per_execution=20)
    return model


class _Clock(keras.callbacks.Callback):
    """Wall and CPU seconds of one fit() (CPU time: all of this process's threads, less
    disturbed than wall time by other processes on a shared machine)."""

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter(), time.process_time()

    def on_train_end(self, logs=None):
        self.seconds = (time.perf_counter() - self.start[0],
                        time.process_time() - self.start[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", type=int, nargs="+", default=[2, 16])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    print(f"fit() ms/step, default MAF, batch {a.batch}, {a.steps} steps per timing, median "
          f"of {a.repeats} alternating repeats ({len(tf.config.list_logical_devices())} "
          f"logical devices: {[d.device_type for d in tf.config.list_logical_devices()]})")
    for dims in a.dims:
        x = np.random.default_rng(0).normal(size=(a.batch * 20, dims)).astype(np.float32)
        data = tf.data.Dataset.from_tensor_slices(x).batch(a.batch).repeat().prefetch(2)
        runs = {}
        for guarded in (True, False):
            model = build(guarded, dims)
            model.fit(data, epochs=1, steps_per_epoch=40, verbose=0)  # compile, warm up
            runs[guarded] = (model, [])
        for _ in range(a.repeats):
            for model, times in runs.values():
                clock = _Clock()
                model.fit(data, epochs=1, steps_per_epoch=a.steps, verbose=0, callbacks=[clock])
                times.append([1e3 * t / a.steps for t in clock.seconds])
        params = sum(int(np.prod(v.shape)) for v in runs[True][0].trainable_variables)
        for i, kind in enumerate(("wall", "CPU")):
            guarded, plain = (statistics.median(t[i] for t in runs[g][1]) for g in (True, False))
            print(f"D={dims:3d} params={params:7d} {kind:4s} ms/step: guarded {guarded:7.3f}"
                  f"  plain {plain:7.3f}  ratio {guarded / plain:5.3f}")


if __name__ == "__main__":
    main()
