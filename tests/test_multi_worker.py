"""MultiWorkerMirroredStrategy: two worker processes on loopback train like one device.

The workers run tests/multi_worker_train.py with their own TF_CONFIG (127.0.0.1, ports free
at run time). Bounded in time: each worker gets a deadline and both are killed (SIGKILL; TF
ignores SIGTERM while it waits for its peers) on timeout or when one of them fails.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("multi_worker_train.py")
# Within the 1-minute budget on an idle 2-core machine; a loaded machine may need more:
# TFP_FLOWS_MULTI_WORKER_DEADLINE_S=<seconds> raises it.
DEADLINE_S = float(os.environ.get("TFP_FLOWS_MULTI_WORKER_DEADLINE_S", 55.0))


def free_ports(n):
    """n distinct TCP ports on 127.0.0.1 that were free a moment ago (held open together)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_workers(out_dir, num_workers=2, deadline_s=DEADLINE_S):
    """Start the workers, wait for all; kill all on a failure or past the deadline."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(num_workers)]}
    procs = []
    for index in range(num_workers):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
                   TF_CONFIG=json.dumps({"cluster": cluster,
                                         "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, str(SCRIPT), str(out_dir)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    end = time.monotonic() + deadline_s
    try:
        while any(p.poll() is None for p in procs):
            if time.monotonic() > end or any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        outputs = [p.communicate() for p in procs]
    for index, (p, (_, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert p.returncode == 0, (f"worker {index} exited with {p.returncode} (killed past "
                                   f"the {deadline_s:.0f} s deadline if -9):\n{err[-3000:]}")
    return [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]


@pytest.mark.slow
def test_two_workers_train_like_one_device_and_only_the_chief_saves(tmp_path):
    """Measured (2 workers x 1 CPU replica vs one device, MAF on two-moons, Adam, 3 epochs
    of 8 batches of 256): per-epoch losses 2.85302, 2.77950, 2.71743 nats, largest
    |difference| 2.4e-7 nats; tolerance 1e-4. Wall time ~25 s idle (most of it importing
    TensorFlow twice)."""
    chief, worker = run_workers(tmp_path)
    assert chief["chief"] and not worker["chief"]
    assert chief["replicas"] == worker["replicas"] == 2
    single = chief["single_device_losses"]
    assert single[-1] < single[0] - 0.05  # it trains
    for multi in (chief["losses"], worker["losses"]):
        assert max(abs(a - b) for a, b in zip(multi, single, strict=True)) < 1e-4, \
            (multi, single)

    # Only the chief wrote to the final location; the other worker's scratch copy is gone.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.keras"]
    assert chief["saved_to"] == chief["final"] == str(tmp_path / "flow.keras")
    assert worker["saved_to"] != worker["final"]
    assert not Path(worker["saved_to"]).exists()
    assert not Path(worker["saved_to"]).parent.exists()
