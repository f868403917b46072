#!/usr/bin/env bash
# One command: tfp_flows and every peer of ../shared/bench/peers, per config, with our ratios.
#   bash benchmarks/run.sh                       # 3 repeats, protocol step budgets (~45 min)
#   NF_BENCH_STEPS=600 bash benchmarks/run.sh --repeats 1   # shorter
# Extra arguments go to benchmarks/bench.py (compare|levers|scaling|report, --repeats, --configs).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${NF_BENCH_OURPY:-$HERE/../.venv/bin/python}
exec "$PY" "$HERE/bench.py" "$@"
