"""ROS domain ids for tests, split between pytest-xdist workers."""
from __future__ import annotations

import os
import secrets

DOMAINS_PER_RANGE = 100
"""ROS domains the tests draw from: 1-100 for contexts, 101-200 for graphs a test starts itself."""


def random_domain(first: int) -> int:
    """A random domain of the range starting at `first`, from this pytest-xdist worker's share of it
    (scripts/test.sh runs two workers), so tests running at once in two workers never share one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = DOMAINS_PER_RANGE // workers
    return first + int(worker.removeprefix("gw")) * share + secrets.randbelow(share)
