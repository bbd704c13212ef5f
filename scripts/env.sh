# Sourced by the project's commands after scripts/bootstrap.sh: the ROS environment of the pip route.
# Talk only on this host, on ROS domain 0, unless the user has chosen otherwise: set
# ROS_AUTOMATIC_DISCOVERY_RANGE / ROS_DOMAIN_ID (an integer 0..232) before sourcing this. Every entry
# point (the scripts, bringup, edge-demo, evaluate, the nodes, the launch files) joins that domain
# (see README, "Networking and security").
export VIRTUAL_ENV="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv"
export PATH="$VIRTUAL_ENV/bin:$PATH"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export LD_LIBRARY_PATH="$VIRTUAL_ENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-0}"
export PYTHONUNBUFFERED=1
