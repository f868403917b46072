"""Per-operation profile of one compiled training step, from XLA:CPU's own thunk trace.

    .venv/bin/python benchmarks/profile_ops.py --config gmm32 [--steps 10] [--out F]

Builds the peer benchmark's model (`run_tfp_flows.build_model`), compiles the full training
step (loss with one MADE pass per MAF layer, gradient, Adam; `run_tfp_flows.hand_step`),
and traces `--steps` calls with the TensorFlow profiler while XLA emits a trace event per
executed thunk (`--xla_cpu_enable_xprof_traceme`). The optimised HLO (`--xla_dump_to`) names
each thunk's instruction, so every event gets a role:

  dot forward            x·W or h·W
  dot input gradient     dh·Wᵀ (TF's MatMul gradient with grad_x)
  dot weight gradient    hᵀ·dh, contracting the batch (grad_y)
  bias + ReLU, ReLU grad the elementwise fusions around the hidden layers
  kernel * mask          MADE's masked kernels (forward) and masked weight gradients
  Adam                   the optimizer's update fusions
  other                  the flow's own elementwise work, reductions, copies

XLA:CPU runs independent thunks on its two threads at once, so the per-role times are
thread-busy milliseconds per step (their sum can exceed the step's wall time, and a thunk
that runs beside another is slowed by it); the shares, not single thunks, are the result.
"""

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time
from pathlib import Path

DUMP = tempfile.mkdtemp(prefix="profile_ops_hlo_")
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_xprof_traceme=true"
                           f" --xla_dump_to={DUMP} --xla_dump_hlo_as_text")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run_tfp_flows as ours  # noqa: E402  (sets threads, imports the peer harness)

common, tf, keras, np = ours.common, ours.tf, ours.keras, ours.np
ROLES = ["dot forward", "dot input gradient", "dot weight gradient", "bias + ReLU, ReLU grad",
         "kernel * mask", "Adam", "other"]


def hlo_instructions(module_text):
    """name -> (opcode, the instruction's line) for the optimised HLO of one module."""
    out = {}
    for line in module_text.splitlines():
        m = re.match(r"\s*(?:ROOT )?%?([\w.\-]+) = \S+ ([\w-]+)\(", line)
        if m:
            out[m.group(1)] = (m.group(2), line)
    return out


def role(opcode, line):
    if opcode == "dot":  # TF's MatMulGrad marks its two products grad_x / grad_y
        if 'grad_y="true"' in line:
            return "dot weight gradient"
        return "dot input gradient" if 'grad_x="true"' in line else "dot forward"
    if "Adam" in line or "adam" in line:
        return "Adam"
    if re.search(r'op_type="(Mul)"', line) and "wrapped_multiply" in line:
        return "kernel * mask"
    if re.search(r'op_type="(Relu|ReluGrad)"', line):
        return "bias + ReLU, ReLU grad"
    return "other"


def thunk_times(logdir, steps):
    """Thunk name -> thread-busy ms per step, from the profiler's XSpace."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    times = collections.defaultdict(float)
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_numa"):  # XLA's intra-op (Eigen) threads
                for ev in line.events:
                    name = names.get(ev.metadata_id, "?")
                    if name != "ThunkExecutor::Execute":
                        times[name] += ev.duration_ps / 1e9 / steps
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="gmm32")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out")
    a = ap.parse_args()
    cfg = common.CONFIGS[a.config]
    x = tf.constant(common.load_data(cfg)[0][: cfg["batch"]])
    model, _ = ours.build_model(cfg)
    model.compile(optimizer=keras.optimizers.Adam(cfg["lr"]), jit_compile=True)
    model.optimizer.build(model.trainable_variables)
    step = ours.hand_step(model, True)
    for _ in range(5):
        float(step(x))
    t = time.perf_counter()
    for _ in range(a.steps):
        float(step(x))
    wall = 1e3 * (time.perf_counter() - t) / a.steps
    logdir = tempfile.mkdtemp(prefix="profile_ops_trace_")
    tf.profiler.experimental.start(logdir)
    for _ in range(a.steps):
        float(step(x))
    tf.profiler.experimental.stop()

    module = max(glob.glob(f"{DUMP}/*step*after_optimizations.txt"), key=os.path.getsize)
    hlo = hlo_instructions(Path(module).read_text())
    per_role, n_ops = collections.Counter(), collections.Counter()
    for name, ms in thunk_times(logdir, a.steps).items():
        if name in hlo:
            r = role(*hlo[name])
            per_role[r] += ms
            n_ops[r] += 1
    busy = sum(per_role.values())
    flops = 3 * common.made_matmul_flops_per_sample(cfg) * cfg["batch"]
    print(f"{a.config}: full training step {wall:.2f} ms wall (untraced), "
          f"{flops / wall / 1e6:.0f} GFLOP/s of dense-matmul work; thunk time {busy:.2f} ms")
    rows = {}
    for r in ROLES:
        rows[r] = {"ms": per_role[r], "share": per_role[r] / busy, "thunks": n_ops[r]}
        print(f"  {r:24s} {per_role[r]:8.2f} ms  {100 * per_role[r] / busy:5.1f} %  "
              f"({n_ops[r]} instructions)")
    if a.out:
        ours.save_keyed_result(a.out, a.config,
                               {"wall_ms": wall, "busy_ms": busy, "roles": rows},
                               time_format="%Y-%m-%d %H:%M")


if __name__ == "__main__":
    main()
