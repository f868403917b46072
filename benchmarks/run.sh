#!/usr/bin/env bash
# One command: tfp_flows and every peer (raw TFP, zuko, nflows, flowjax), per config, with
# our ratios. Works from a fresh clone: it makes the project's .venv if it is missing, and
# benchmarks/peers/setup_envs.sh makes the peers' environments (pinned versions, from PyPI).
#   bash benchmarks/run.sh                       # 3 repeats, protocol step budgets (~45 min)
#   NF_BENCH_STEPS=600 bash benchmarks/run.sh --repeats 1   # shorter
# Extra arguments go to benchmarks/bench.py (compare|levers|scaling|report, --repeats, --configs).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${NF_BENCH_OURPY:-$HERE/../.venv/bin/python}
if [ ! -x "$PY" ]; then
  python3 -m venv "$HERE/../.venv"
  "$HERE/../.venv/bin/pip" install -q -e "$HERE/.."
  PY=$HERE/../.venv/bin/python
fi
export NF_BENCH_OURPY=$PY
exec "$PY" "$HERE/bench.py" "$@"
