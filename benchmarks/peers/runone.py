"""Run one benchmark process, and record how busy the rest of the machine was.

usage: python3 runone.py OUT_JSON LOG_FILE TIMEOUT_S -- cmd args...

The machine (2 vCPUs) may be shared with other processes we do not control, so:
  * before starting, wait (up to IDLE_WAIT_MAX s) until the machine is idle
    (< 0.15 cores busy over a 1 s probe);
  * while the child runs, poll /proc/stat and the child's own CPU time every 0.5 s;
    "foreign" CPU = all busy CPU time - the child's CPU time.
The load record is merged into OUT_JSON (created with status=failed if the child
did not write it).  stdlib only.
"""
import json
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
IDLE_WAIT_MAX = float(os.environ.get("NF_BENCH_IDLE_WAIT_MAX", 90))


def cpu_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    return (user + nice + system + irq + softirq) / HZ, steal / HZ


def proc_cpu(pid):
    """CPU seconds of pid incl. its reaped children; None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / HZ


def wait_idle():
    t0 = time.time()
    while True:
        b0, _ = cpu_busy()
        time.sleep(1.0)
        b1, _ = cpu_busy()
        busy = b1 - b0
        if busy < 0.15 or time.time() - t0 > IDLE_WAIT_MAX:
            return {"waited_s": round(time.time() - t0, 1), "busy_cores_at_start": round(busy, 3)}


RETRY_FOREIGN = float(os.environ.get("NF_BENCH_RETRY_FOREIGN", 0.2))


def main():
    out, log, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    previous = []
    for attempt in (1, 2):
        rec = run_once(out, log, timeout, cmd)
        fl = rec["host_load"]["foreign_cpu_cores_mean"]
        if rec.get("status") == "ok" and fl > RETRY_FOREIGN and attempt == 1:
            print(f"    foreign load {fl} cores > {RETRY_FOREIGN}: re-running once", flush=True)
            rate = rec.get("train", {}).get("train_samples_per_s")
            previous.append({"host_load": rec["host_load"], "train_samples_per_s": rate})
            continue
        break
    if previous:
        rec["previous_attempts"] = previous
    json.dump(rec, open(out, "w"), indent=1)


def run_once(out, log, timeout, cmd):
    idle = wait_idle()
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    if os.path.exists(out):
        os.remove(out)
    import resource
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    b0, st0 = cpu_busy()
    t0 = time.time()
    samples = []
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT)
        last_b, last_c, last_t = b0, 0.0, t0
        rc = None
        while rc is None:
            try:
                rc = p.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
            now = time.time()
            c = proc_cpu(p.pid)
            b, _ = cpu_busy()
            if c is not None and now > last_t:
                samples.append(max(0.0, ((b - last_b) - (c - last_c)) / (now - last_t)))
                last_b, last_c, last_t = b, c, now
            if rc is None and now - t0 > timeout:
                p.kill()
                rc = p.wait()
                rc = f"timeout after {timeout}s"
    wall = time.time() - t0
    b1, st1 = cpu_busy()
    # child CPU time from rusage of reaped children (most reliable at the end)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (ru.ru_utime + ru.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    load = {
        "idle_gate": idle,
        "process_wall_s": round(wall, 2),
        "process_cpu_s": round(own, 2),
        "foreign_cpu_cores_mean": round(max(0.0, (b1 - b0) - own) / wall, 3),
        "foreign_cpu_cores_p90": (round(sorted(samples)[int(0.9 * (len(samples) - 1))], 3)
                                  if samples else None),
        "foreign_cpu_cores_max": round(max(samples), 3) if samples else None,
        "steal_cores_mean": round((st1 - st0) / wall, 3),
        "loadavg_end": open("/proc/loadavg").read().split()[:3],
    }
    try:
        rec = json.load(open(out))
    except Exception:
        tail = open(log).read()[-3000:]
        rec = {"status": "failed", "returncode": rc, "cmd": cmd, "log_tail": tail}
    rec["host_load"] = load
    rec["log_file"] = log
    json.dump(rec, open(out, "w"), indent=1)
    print(f"    -> rc={rc} wall={wall:.1f}s foreign_cpu_mean={load['foreign_cpu_cores_mean']} "
          f"max={load['foreign_cpu_cores_max']} idle_wait={idle['waited_s']}s", flush=True)
    return rec


if __name__ == "__main__":
    main()
