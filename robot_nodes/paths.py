"""Where the package's shared files (config/, launch/, models/) are."""
from __future__ import annotations

from pathlib import Path

PACKAGE = "edge_robot_runtime"
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_directory() -> Path:
    """The source tree when running from a checkout (pip route), else the colcon install's share/."""
    if (_SOURCE_ROOT / "package.xml").is_file():
        return _SOURCE_ROOT
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE))


def share_path(*parts: str) -> Path:
    """A file under the share directory, e.g. share_path("config", "sim_world.param.yaml")."""
    return share_directory().joinpath(*parts)


def resolve(path: str) -> Path:
    """An absolute path as given; a relative one under the share directory (parameter values)."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else share_directory() / candidate
