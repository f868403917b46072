"""XLA:CPU dot throughput on gmm32's shapes, and MADE layers as degree-block staircases.

    .venv/bin/python benchmarks/profile_dots.py dots            # forward vs backward dot shapes
    .venv/bin/python benchmarks/profile_dots.py staircase 2,4,8  # masked dot vs G block dots

`dots`: each dot of a gmm32 training step (batch 1024, MADE 32 -> 512 -> 512 -> 64) alone in a
`tf.function(jit_compile=True)` (5 chained calls per launch), the shapes called in turn over 5
rounds; GFLOP/s of the median. The backward's weight gradients hᵀ·dh contract over the batch
(a transposed left operand).

`staircase` (timing only): the loss + gradient of 5 MADEs of gmm32's size, each masked layer
either one dot with kernel * mask (what nets.MADE does) or split into G groups of output units
by degree, each a dot over only the input units it may see (the masks are block staircases
because the degrees are sorted): fewer FLOPs (~(G+1)/2G of the dense ones for hidden layers)
but G smaller dots. Gradients agree to float rounding.
"""

import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_flows.nets.made import made_degrees, made_masks  # noqa: E402

tf.config.threading.set_intra_op_parallelism_threads(2)
tf.config.threading.set_inter_op_parallelism_threads(2)
B, D, H, LAYERS = 1024, 32, 512, 5


def interleaved(fns, rounds, arg):
    for f in fns.values():
        np.asarray(f(*arg)[0])
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            t = time.perf_counter()
            np.asarray(f(*arg)[0])
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def dots():
    mm = tf.matmul
    shapes = {  # name: (fn, lhs shape, rhs shape, flops)
        "forward hidden h·W [B,512]x[512,512]": (mm, (B, H), (H, H)),
        "backward hidden dh·Wᵀ": (lambda a, b: mm(a, b, transpose_b=True), (B, H), (H, H)),
        "backward hidden hᵀ·dh (weight gradient)": (lambda a, b: mm(a, b, transpose_a=True),
                                                    (B, H), (B, H)),
        "forward output h·W [B,512]x[512,64]": (mm, (B, H), (H, 2 * D)),
        "backward output hᵀ·dout (weight gradient)": (lambda a, b: mm(a, b, transpose_a=True),
                                                      (B, H), (B, 2 * D)),
        "forward input x·W [B,32]x[32,512]": (mm, (B, D), (D, H)),
        "backward input xᵀ·dh (weight gradient)": (lambda a, b: mm(a, b, transpose_a=True),
                                                   (B, D), (B, H)),
    }
    reps = 5
    fns, flops = {}, {}
    for name, (f, sa, sb) in shapes.items():
        a, b = tf.random.normal(sa), tf.random.normal(sb)
        out = f(a, b)
        inner = sa[0] if out.shape[0] != sa[0] else sa[1]
        flops[name] = 2 * out.shape[0] * out.shape[1] * inner

        def chained(a, b, f=f):
            acc = tf.zeros([])
            for _ in range(reps):
                acc += tf.reduce_sum(f(a + acc * 0, b)[:1, :1])
            return (acc,)

        fns[name] = (tf.function(chained, jit_compile=True), a, b)
    med = interleaved({k: lambda a=None, b=None, v=v: v[0](v[1], v[2]) for k, v in fns.items()},
                      5, ())
    for name, m in med.items():
        print(f"{name:45s} {1e3 * m / reps:8.3f} ms  {flops[name] * reps / m / 1e9:7.1f} GFLOP/s")


def staircase(groups):
    degrees = made_degrees(D, [H, H])
    masks = [tf.constant(m) for m in made_masks(D, [H, H], 2)]
    all_degrees = [degrees[0], degrees[1], degrees[2], np.repeat(degrees[0], 2)]
    rng = np.random.default_rng(0)
    kernels = [[tf.Variable(0.05 * rng.standard_normal(m.shape).astype("float32"))
                for m in masks] for _ in range(LAYERS)]
    variables = [v for layer in kernels for v in layer]
    x = tf.constant(rng.standard_normal((B, D)).astype("float32"))

    def layer_dot(h, kernel, i, g):
        if g == 1:
            return tf.matmul(h, kernel)
        d_in, d_out = all_degrees[i], all_degrees[i + 1]
        edges = np.linspace(0, len(d_out), g + 1).round().astype(int)
        outs = []
        for a, b in zip(edges[:-1], edges[1:], strict=True):
            top = d_out[a:b].max()
            k = max(1, int(np.sum(d_in < top if i == 2 else d_in <= top)))
            outs.append(tf.matmul(h[:, :k], kernel[:k, a:b]))
        return tf.concat(outs, -1)

    def step(g):
        def f(x):
            with tf.GradientTape() as tape:
                h, total = x, 0.0
                for layer in kernels:
                    t = h
                    for i, (w, m) in enumerate(zip(layer, masks, strict=True)):
                        t = layer_dot(t, w * m, i, g)
                        if i < 2:
                            t = tf.nn.relu(t)
                    h = h + 0.01 * t[:, ::2]
                    total += tf.reduce_sum(t)
            return total, tape.gradient(total, variables)
        return tf.function(f, jit_compile=True)

    fns = {"one masked dot per layer": step(1)}
    fns.update({f"staircase, {g} blocks": step(g) for g in groups})
    ref = fns["one masked dot per layer"](x)[1]
    for name, f in list(fns.items())[1:]:
        err = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(f(x)[1], ref, strict=True))
        print(f"{name}: max |gradient difference| {err:.2g}")
    med = interleaved(fns, 9, (x,))
    base = med["one masked dot per layer"]
    for name, m in med.items():
        print(f"{name:30s} {1e3 * m:9.2f} ms  speed-up {base / m:.2f}x")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "dots"
    if what == "dots":
        dots()
    else:
        staircase([int(g) for g in (sys.argv[2] if len(sys.argv) > 2 else "2,4,8").split(",")])
