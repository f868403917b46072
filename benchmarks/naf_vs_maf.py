"""NAF vs affine MAF on multimodal 2-D data, and a masked-convolution MAF on 8x8 digits.

    .venv/bin/python benchmarks/naf_vs_maf.py            # both parts
    .venv/bin/python benchmarks/naf_vs_maf.py --part 2d  # or --part digits

Part 2d: a NAF (2 DSF layers, MADE 32-32, K = 8 sigmoid units) and affine MAFs with about
the same number of parameters, trained identically; held-out NLL in nats and the grid
integral of each density on [-6, 6]^2. Part digits: `models.build_pixelmaf` on
sklearn's 8x8 digits (17 levels 0..16), dequantised v = (x + u) / 17 with fresh noise every
epoch; test bits/dim of the discrete data = (E[-log p(v)] + 64 ln 17) / (64 ln 2).
"""

import argparse
import math
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfp_flows.models import build_maf, build_naf, build_pixelmaf  # noqa: E402

from tfp_flows import datasets, testing  # noqa: E402


def ring_of_gaussians(n, *, modes=8, radius=2.0, std=0.2, seed=0):
    """`modes` isotropic Gaussians (std `std`) evenly spaced on a circle, float32 [n, 2]."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * rng.integers(modes, size=n) / modes
    centres = radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centres + std * rng.standard_normal((n, 2))).astype(np.float32)


def num_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def train_2d(builder, options, x_train, x_test, epochs, seed=0):
    keras.utils.set_random_seed(seed)
    model = builder(2, seed=seed, **options)
    steps = epochs * math.ceil(len(x_train) / 256)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), jit_compile=False)
    start = time.time()
    model.fit(x_train, epochs=epochs, batch_size=256, verbose=0)
    seconds = time.time() - start
    nll = -float(np.mean(model.log_prob(x_test)))
    return model, nll, seconds


def part_2d(epochs):
    contenders = [
        # one Gaussian base for all, so that only the transformers differ
        ("NAF  2 layers, MADE 32-32, K=8", build_naf,
         dict(num_layers=2, hidden_units=(32, 32), hidden_size=8, base="normal")),
        ("MAF  4 layers, MADE 33-33", build_maf,
         dict(num_layers=4, hidden_units=(33, 33), base="normal")),
        ("MAF  2 layers, MADE 48-48", build_maf,
         dict(num_layers=2, hidden_units=(48, 48), base="normal")),
    ]
    data = {"ring of 8 Gaussians": ring_of_gaussians(12000, seed=0),
            "two moons": datasets.two_moons(12000, seed=0)}
    for data_name, x in data.items():
        x_train, x_test = x[:10000], x[10000:]
        print(f"\n{data_name}: 10000 train / 2000 test points, {epochs} epochs, "
              f"Adam 3e-3 cosine, batch 256")
        for label, builder, options in contenders:
            model, nll, seconds = train_2d(builder, options, x_train, x_test, epochs)
            integral = testing.grid_integral(model.log_prob)
            print(f"  {label:32s} params {num_params(model):6d}  test NLL {nll:7.4f} nats  "
                  f"grid integral {integral:.4f}  ({seconds:.0f} s)")


def part_digits(epochs, transformer):
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)[..., None]  # [1797, 8, 8, 1], 0..16
    order = np.random.default_rng(0).permutation(len(images))
    train, test = images[order[:1500]], images[order[1500:]]
    keras.utils.set_random_seed(0)
    model = build_pixelmaf((8, 8, 1), num_layers=2, filters=32, num_blocks=2,
                           transformer=transformer, seed=0)
    steps = epochs * 15
    model.compile(optimizer=keras.optimizers.Adam(
        keras.optimizers.schedules.CosineDecay(2e-3, steps)), jit_compile=False)
    dequantise = lambda x: (x + tf.random.uniform(tf.shape(x))) / 17.0  # noqa: E731
    ds = (tf.data.Dataset.from_tensor_slices(train).shuffle(1500, seed=0).batch(100)
          .map(dequantise))
    start = time.time()
    model.fit(ds, epochs=epochs, verbose=0)
    seconds = time.time() - start
    rng = np.random.default_rng(1)
    nlls = []
    for _ in range(10):  # average over 10 dequantisation draws
        v = (test + rng.uniform(size=test.shape)).astype(np.float32) / 17.0
        nlls.append(-float(np.mean(model.log_prob(v))))
    nll = float(np.mean(nlls))
    d = 64
    bpd = (nll + d * math.log(17)) / (d * math.log(2))
    print(f"\ndigits 8x8 (1500 train / 297 test), pixelmaf transformer={transformer}, "
          f"{num_params(model)} params, {epochs} epochs ({seconds:.0f} s)")
    print(f"  test NLL of v = (x+u)/17: {nll:.2f} nats; bits/dim of the 17-level data: "
          f"{bpd:.3f} (uniform over 17 levels: {math.log2(17):.3f})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["2d", "digits", "all"], default="all")
    parser.add_argument("--epochs-2d", type=int, default=60)
    parser.add_argument("--epochs-digits", type=int, default=60)
    parser.add_argument("--transformer", choices=["affine", "dsf"], default="affine")
    args = parser.parse_args()
    if args.part in ("2d", "all"):
        part_2d(args.epochs_2d)
    if args.part in ("digits", "all"):
        part_digits(args.epochs_digits, args.transformer)


if __name__ == "__main__":
    main()
