"""Energy of a piece of work: measured by RAPL where the kernel exposes it, else estimated.

`EnergyMeter.measure()` returns a context manager; after the block, `.joules` holds the energy and
`meter.source` says where it came from:

- "rapl": the package energy counters of /sys/class/powercap/intel-rapl:N (intel-rapl also serves
  AMD Zen) read before and after: the whole package, other processes included.
- "cpu power model": no readable counter (virtual machines, containers without access). The energy
  is WATTS_PER_BUSY_CORE × the CPU seconds this process spent (user + system, all its threads,
  from os.times()) plus WATTS_STATIC_SHARE × the wall seconds. The constants are a documented
  estimate, not a measurement: about 4 W per busy core is a server core at load (an AMD EPYC's
  package draws ≈ 200–280 W over 64 cores at full load; a laptop or Jetson core draws 1–3 W), and
  1 W of static power is charged to the request for the time it holds the machine.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")
WATTS_PER_BUSY_CORE = 4.0
"""Power model: watts one fully busy core adds."""
WATTS_STATIC_SHARE = 1.0
"""Power model: watts of the idle machine charged to a request while it runs."""

RAPL_SOURCE = "rapl"
MODEL_SOURCE = "cpu power model"


def rapl_counters(root: Path = POWERCAP) -> list[tuple[Path, int]]:
    """(energy_uj file, its wrap-around range) of every readable package domain; empty when none."""
    counters = []
    for domain in sorted(root.glob("intel-rapl:*")):
        if domain.name.count(":") != 1:  # sub-domains (core, uncore, dram) are inside the package's count
            continue
        energy, wrap = domain / "energy_uj", domain / "max_energy_range_uj"
        try:
            int(energy.read_text())
            counters.append((energy, int(wrap.read_text())))
        except (OSError, ValueError):
            continue
    return counters


@dataclass
class Measurement:
    joules: float = 0.0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU seconds of this process over the block (all threads)."""


def power_model_joules(cpu_seconds: float, wall_seconds: float) -> float:
    return WATTS_PER_BUSY_CORE * cpu_seconds + WATTS_STATIC_SHARE * wall_seconds


class EnergyMeter:
    def __init__(self, powercap_root: Path = POWERCAP) -> None:
        self._counters = rapl_counters(powercap_root)
        self.source = RAPL_SOURCE if self._counters else MODEL_SOURCE
        """'rapl' or 'cpu power model'."""

    def _rapl_microjoules(self) -> list[int]:
        return [int(path.read_text()) for path, _ in self._counters]

    def measure(self) -> "_Measuring":
        return _Measuring(self)


class _Measuring:
    def __init__(self, meter: EnergyMeter) -> None:
        self._meter = meter
        self.result = Measurement()

    def __enter__(self) -> Measurement:
        times = os.times()
        self._cpu = times.user + times.system
        self._wall = time.perf_counter()
        self._rapl = self._meter._rapl_microjoules()
        return self.result

    def __exit__(self, *exc) -> None:
        times = os.times()
        result = self.result
        result.cpu_seconds = times.user + times.system - self._cpu
        result.wall_seconds = time.perf_counter() - self._wall
        if self._meter.source == RAPL_SOURCE:
            after = self._meter._rapl_microjoules()
            result.joules = sum((end - start) % wrap * 1e-6 for start, end, (_, wrap)
                                in zip(self._rapl, after, self._meter._counters))
        else:
            result.joules = power_model_joules(result.cpu_seconds, result.wall_seconds)
