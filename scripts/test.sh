#!/usr/bin/env bash
# The test command: set-up (first run installs everything), then pytest. Arguments go to pytest;
# without a -m selection the slow tests are left out (run them with: scripts/test.sh -m slow). Two
# pytest-xdist workers, one test file each at a time (module fixtures are built once); -n 0 runs in one.
# The 15 slowest tests are listed at the end, to keep the suite within its 15 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
marker=(-m "not slow")
for arg in "$@"; do [ "$arg" = "-m" ] && marker=(); done
exec python -m pytest -n 2 --dist loadfile --durations=15 "${marker[@]}" "$@"
