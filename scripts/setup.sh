#!/usr/bin/env bash
# Set up PolypVision on a fresh Debian/Ubuntu machine: system libraries, a virtual
# environment in .venv, the package (editable) with its extras.
#   POLYPVISION_EXTRAS  extras to install (default: dev,train,app,cpu). Exactly one ONNX runtime:
#                       cpu (onnxruntime) or gpu (onnxruntime-gpu with NVIDIA's CUDA/cuDNN wheels),
#                       e.g. POLYPVISION_EXTRAS=dev,train,app,gpu on an NVIDIA machine; "app,cpu" for
#                       the app alone; "cpu" for the headless core alone.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${POLYPVISION_EXTRAS-dev,train,app,cpu}"
PY="${PYTHON:-python3}"
has_extra() { case ",$EXTRAS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
if has_extra cpu && has_extra gpu; then
  echo "setup: choose one of the cpu and gpu extras, not both" >&2; exit 2
fi

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
# onnxruntime and onnxruntime-gpu install the same module: switching from one to the other
# (an older .venv had onnxruntime-gpu) means removing both first, then installing the one chosen.
have() { .venv/bin/python -m pip show -q "$1" >/dev/null 2>&1; }
other=""
if has_extra cpu; then other=onnxruntime-gpu; elif has_extra gpu; then other=onnxruntime; fi
if [ -n "$other" ] && have "$other"; then
  .venv/bin/python -m pip uninstall -q -y onnxruntime onnxruntime-gpu
fi
if [ -n "$EXTRAS" ]; then
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
else
  .venv/bin/python -m pip install -q -e .
fi
rt=$(.venv/bin/python -c 'import onnxruntime as o; print("onnxruntime", o.__version__)' 2>/dev/null \
     || echo "no ONNX runtime: add the cpu or gpu extra")
echo "set-up done: .venv ready (extras: ${EXTRAS:-none}; $rt)"
