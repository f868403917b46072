"""Probability distillation: MAF teacher -> IAF student, measured (README section).

    python benchmarks/distillation.py [--data breast-cancer] [--distill-steps 3000]

1. trains a MAF teacher on the data set's training split (fit(), early stopping on the
   validation split);
2. distils an IAF student of the same size into it with `tfp_flows.distillation.
   DistilledFlow` (reverse KL with the student's samples; no data);
3. prints the Monte Carlo estimate of KL(student || teacher) before and after distillation,
   the test NLL of teacher and student, and the sampling throughput of both (samples/s of
   `tf.function(model.sample)`, after a warm-up call, median of 5 calls).

Prints a Markdown block to paste into the README.
"""

import argparse
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_flows import datasets, models  # noqa: E402
from tfp_flows.distillation import DistilledFlow  # noqa: E402


def samples_per_second(model, n, repeats=5):
    sample = tf.function(lambda: model.sample(n))
    sample()  # trace and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sample().numpy()
        times.append(time.perf_counter() - start)
    return n / float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="breast-cancer")
    parser.add_argument("--num-layers", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--teacher-epochs", type=int, default=300)
    parser.add_argument("--teacher-batch-size", type=int, default=64)
    parser.add_argument("--distill-steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--sample-n", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clipnorm", type=float, default=1.0,
                        help="global gradient-norm clip of the distillation steps (rare student "
                             "samples in the teacher's far tails give huge gradients)")
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    train, val, test = datasets.load(args.data, seed=args.seed)
    train, val, test = (a.reshape(len(a), -1) for a in (train, val, test))
    dim = train.shape[1]
    # N(0, I) for both, the bases the published table was measured with
    size = dict(num_layers=args.num_layers, hidden_units=(args.hidden, args.hidden),
                seed=args.seed, base="normal")

    teacher = models.build_maf(dim, name="teacher", **size)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-3))
    start = time.perf_counter()
    teacher.fit(train, validation_data=val, epochs=args.teacher_epochs,
                batch_size=args.teacher_batch_size,
                verbose=0, callbacks=[keras.callbacks.EarlyStopping(
                    monitor="val_loss", patience=20, restore_best_weights=True)])
    teacher_seconds = time.perf_counter() - start

    student = models.build_iaf(dim, name="student", **size)
    distilled = DistilledFlow(student, teacher, batch_size=args.batch_size, seed=args.seed)
    kl_before = distilled.kl_divergence(10000, seed=1)
    distilled.compile(optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(1e-3, args.distill_steps),
        global_clipnorm=args.clipnorm))
    start = time.perf_counter()
    distilled.fit(epochs=1, steps_per_epoch=args.distill_steps, verbose=0)
    distill_seconds = time.perf_counter() - start
    kl_after = distilled.kl_divergence(10000, seed=1)

    nll_teacher = float(-np.mean(teacher.log_prob(test)))
    nll_student = float(-np.mean(student.log_prob(test)))
    rate_teacher = samples_per_second(teacher, args.sample_n)
    rate_student = samples_per_second(student, args.sample_n)

    print("Command: python benchmarks/distillation.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible, "
          f"TF {tf.__version__}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"Data: {args.data} (D = {dim}; train/val/test {len(train)}/{len(val)}/{len(test)}); "
          f"teacher MAF and student IAF: {args.num_layers} layers, MADE "
          f"{args.hidden}x{args.hidden}, {teacher.count_params()} parameters each")
    print(f"Teacher training: {teacher_seconds:.0f} s; distillation: {args.distill_steps} "
          f"steps of {args.batch_size} student samples, {distill_seconds:.0f} s")
    print()
    print("| quantity | teacher (MAF) | student (IAF) |")
    print("|---|---|---|")
    print(f"| test NLL (nats) | {nll_teacher:.2f} | {nll_student:.2f} |")
    print(f"| KL(student ‖ teacher), 10k samples (nats) | 0 | "
          f"{kl_after[0]:.2f} ± {kl_after[1]:.2f} (before distillation: "
          f"{kl_before[0]:.1f} ± {kl_before[1]:.1f}) |")
    print(f"| sampling, {args.sample_n} samples per call (samples/s) | {rate_teacher:,.0f} | "
          f"{rate_student:,.0f} (× {rate_student / rate_teacher:.1f}) |")


if __name__ == "__main__":
    main()
