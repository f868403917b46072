"""FFJORD on two moons: test NLL reached and seconds per epoch, per ODE solver.

    python benchmarks/ffjord_two_moons.py [--epochs 8] [--solvers dopri5 rk4] [--jit]

Trains the zoo's `ffjord` recipe (one block, ODEDynamics 64x64, exact trace in 2-D) with
fit() on the built-in two-moons split (8000 training points, batch 256, Adam 3e-3) and
prints, per solver: seconds of the first epoch (includes tracing/compiling the step), the
median seconds of the later epochs, and the test NLL in nats.
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfp_flows import datasets, models  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start)

    def on_train_begin(self, logs=None):
        self.times = []


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--solvers", nargs="+", default=["dopri5", "rk4"])
    parser.add_argument("--trace", default="auto")
    parser.add_argument("--jit", action="store_true", help="compile(jit_compile=True)")
    args = parser.parse_args(argv)
    train, val, test = datasets.load("two-moons", seed=0)
    print(f"FFJORD two-moons, {args.epochs} epochs, batch 256, jit_compile={args.jit}, "
          f"trace={args.trace}")
    for solver in args.solvers:
        keras.utils.set_random_seed(0)
        model = models.build_ffjord(2, solver=solver, trace=args.trace, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(3e-3), jit_compile=args.jit)
        timer = EpochTimer()
        model.fit(train, epochs=args.epochs, batch_size=256, verbose=0, callbacks=[timer])
        nll = model.evaluate(test, batch_size=1000, verbose=0)[0]
        print(f"{solver}: test NLL {nll:.3f} nats; first epoch {timer.times[0]:.1f} s, "
              f"later epochs {np.median(timer.times[1:]):.1f} s (median)", flush=True)


if __name__ == "__main__":
    main()
