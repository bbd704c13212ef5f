#!/usr/bin/env bash
# The test command: set-up (first run installs everything), then pytest. Arguments go to pytest;
# without a -m selection the slow tests are left out (run them with: scripts/test.sh -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
marker=(-m "not slow")
for arg in "$@"; do [ "$arg" = "-m" ] && marker=(); done
exec python -m pytest "${marker[@]}" "$@"
