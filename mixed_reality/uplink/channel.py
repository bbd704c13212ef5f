"""The wireless uplink from the robot to the access point: path loss, block Rayleigh fading,
Shannon rate and the least transmit power that sends a payload within a latency budget."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from sim.validation import check_ranges


@dataclass
class ChannelConfig:
    """A 5 GHz small cell on a pole at the kerb of the simulated street (defaults: see docs/gsrmr.md)."""

    bandwidth: float = field(default=1.0e6, metadata={"range": (1.0e3, 1.0e9)})
    """Uplink bandwidth granted to the robot, Hz (1 MHz: a few 5G NR resource blocks, or a busy Wi-Fi
    channel's share)."""
    noise_psd: float = field(default=-174.0, metadata={"range": (-200.0, -100.0)})
    """Thermal noise power spectral density, dBm/Hz."""
    noise_figure: float = field(default=7.0, metadata={"range": (0.0, 30.0)})
    """Access point receiver noise figure, dB."""
    reference_loss: float = field(default=46.8, metadata={"range": (0.0, 150.0)})
    """Path loss PL0 at the reference distance, dB (46.8: free space at 1 m and 5.2 GHz)."""
    reference_distance: float = field(default=1.0, metadata={"range": (0.01, 1000.0)})
    """Reference distance d0 of the path-loss model, metres; nearer links are taken at d0."""
    path_loss_exponent: float = field(default=3.0, metadata={"range": (1.5, 6.0)})
    """Path-loss exponent alpha: PL(d) = PL0 + 10 alpha log10(d / d0) (3: an urban street with
    vehicles and foliage between the antennas, between line of sight ~2 and blocked ~3.5)."""
    access_point_x: float = field(default=150.0, metadata={"range": (-1.0e5, 1.0e5)})
    """Access point position in the map frame, x, metres."""
    access_point_y: float = field(default=15.0, metadata={"range": (-1.0e5, 1.0e5)})
    """Access point position in the map frame, y, metres (15: on the left sidewalk of the default street)."""
    access_point_height: float = field(default=6.0, metadata={"range": (0.0, 500.0)})
    """Access point antenna height above the road, metres."""
    antenna_height: float = field(default=1.8, metadata={"range": (0.0, 50.0)})
    """Robot antenna height above the road, metres (on the roof)."""
    rayleigh_fading: bool = True
    """Draw the small-scale fading |h|^2 ~ Exp(1) per frame (block fading); off: |h|^2 = 1."""
    max_power: float = field(default=0.2, metadata={"range": (1.0e-6, 10.0)})
    """Largest transmit power p_max, W (0.2 W = 23 dBm, a UE power class 3 limit)."""

    def __post_init__(self) -> None:
        check_ranges(self)


class Channel:
    """Link budget of the uplink; every method takes and returns numpy arrays or scalars in SI units."""

    def __init__(self, config: ChannelConfig | None = None) -> None:
        self.config = config or ChannelConfig()
        c = self.config
        self._noise_power = 10.0 ** ((c.noise_psd + 10.0 * math.log10(c.bandwidth) + c.noise_figure - 30.0) / 10.0)

    def distance(self, x, y) -> np.ndarray:
        """Antenna-to-antenna distance, metres, for robot positions (x, y) in the map frame."""
        c = self.config
        return np.hypot(np.hypot(np.asarray(x, dtype=np.float64) - c.access_point_x,
                                 np.asarray(y, dtype=np.float64) - c.access_point_y),
                        c.access_point_height - c.antenna_height)

    def path_loss(self, distance) -> np.ndarray:
        """PL(d) in dB."""
        c = self.config
        ratio = np.maximum(np.asarray(distance, dtype=np.float64), c.reference_distance) / c.reference_distance
        return c.reference_loss + 10.0 * c.path_loss_exponent * np.log10(ratio)

    def mean_gain(self, distance) -> np.ndarray:
        """Linear power gain without fading, 10^(-PL(d)/10)."""
        return 10.0 ** (-self.path_loss(distance) / 10.0)

    def gain(self, distance, rng: np.random.Generator) -> np.ndarray:
        """Linear power gain with one fading draw |h|^2 ~ Exp(1) per element (one per frame)."""
        mean = self.mean_gain(distance)
        if not self.config.rayleigh_fading:
            return mean
        return mean * rng.exponential(1.0, size=np.shape(mean))

    def noise_power(self) -> float:
        """Noise power sigma^2 over the bandwidth at the receiver, W."""
        return self._noise_power

    def rate(self, power, gain) -> np.ndarray:
        """Shannon rate B log2(1 + p g / sigma^2), bit/s."""
        snr = np.asarray(power, dtype=np.float64) * np.asarray(gain, dtype=np.float64) / self._noise_power
        return self.config.bandwidth * np.log1p(snr) / math.log(2.0)

    def min_power(self, bits, latency, gain) -> np.ndarray:
        """Least power that sends `bits` within `latency` s: (2^(bits/(B latency)) - 1) sigma^2 / g, W."""
        exponent = math.log(2.0) * np.asarray(bits, dtype=np.float64) / (self.config.bandwidth * latency)
        return np.expm1(exponent) * self._noise_power / np.asarray(gain, dtype=np.float64)

    def airtime(self, bits, power, gain) -> np.ndarray:
        """Seconds to send `bits` at `power`: bits / R(p)."""
        return np.asarray(bits, dtype=np.float64) / self.rate(power, gain)
