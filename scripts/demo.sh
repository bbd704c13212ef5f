#!/usr/bin/env bash
# The main job: set-up (first run installs everything), then the stack on the simulated world,
# ending in a report. Arguments go to edge-demo (see: scripts/demo.sh --help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
source scripts/env.sh
exec edge-demo "$@"
