#!/usr/bin/env bash
# Reproduce docs/screenshot.png: the desktop app under Xvfb, playing a clip made from
# CVC-ClinicDB frames (1920x1080 at 60 fps by default, a modern scope's output) (built at runtime in a temp folder; no dataset image enters the repo),
# with the default shipped model. Also prints the stats the app showed when it closed.
#
#   scripts/screenshot.sh [OUT.png]          (default: docs/screenshot.png)
#   PV_DATA=/path/to/CVC-ClinicDB  PV_SECONDS=12  PV_MODEL=x.onnx  PV_SIZE=640x480  PV_FPS=25
#   to override
#
# Needs: xvfb (xvfb-run), imagemagick (import), and the xcb libraries Qt loads (see README).
set -euo pipefail
for tool in xvfb-run import; do
  command -v "$tool" >/dev/null || { echo "screenshot.sh: $tool not found; install it: sudo apt-get install xvfb imagemagick" >&2; exit 2; }
done
cd "$(dirname "$0")/.."
OUT="${1:-docs/screenshot.png}"
DATA="${PV_DATA:-/work/shared/data/CVC-ClinicDB}"
SECONDS_TO_PLAY="${PV_SECONDS:-12}"
PY="${PYTHON:-.venv/bin/python}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
SIZE="${PV_SIZE:-1920x1080}"
FPS="${PV_FPS:-60}"
CLIP="$WORK/clinicdb_${SIZE}_${FPS}fps.mp4"

# 1. An H.264 clip at SIZE and FPS: ClinicDB frames in their natural (video) order.
"$PY" - "$DATA" "$CLIP" "$SIZE" "$FPS" <<'PY'
import sys
from pathlib import Path

import cv2

from polypvision.recording import VideoWriter
from polypvision.sources.frames import natural_key

data, out = Path(sys.argv[1]), Path(sys.argv[2])
width, height = (int(v) for v in sys.argv[3].lower().split("x"))
fps = float(sys.argv[4])
files = sorted((data / "images").glob("*.png"), key=lambda p: natural_key(p.name))
if not files:
    sys.exit(f"no ClinicDB frames under {data}/images; set PV_DATA")
w = VideoWriter(out, width, height, fps, crf=18)
for f in files[:300]:
    img = cv2.imread(str(f))
    if img is not None:
        w.write_image(cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR))
w.commit()
print(f"clip: {out} ({min(len(files), 300)} frames, {width}x{height} at {fps:g} fps)")
PY

MODEL_ARGS=()
if [[ -n "${PV_MODEL:-}" ]]; then MODEL_ARGS=(--model "$PV_MODEL"); fi

# 2. Run the app in a fresh settings folder (no remembered model or window size), screenshot
#    the window (no window manager: it sits at the top-left corner), close it with SIGINT
#    (the app's handler closes the window cleanly), and keep its log for the stats line.
export XDG_CONFIG_HOME="$WORK/config"
mkdir -p "$XDG_CONFIG_HOME/PolypVision"
printf '[playback]\nloop=true\n' > "$XDG_CONFIG_HOME/PolypVision/PolypVision.conf"  # keep playing
export QT_QPA_PLATFORM=xcb
mkdir -p "$(dirname "$OUT")"
# The window takes 95% of a first-run screen: a 1348x842 screen gives a 1280x800 window at
# (0, 0), cropped out of the root window below.
xvfb-run -a -s "-screen 0 1348x842x24" bash -c '
  "$0" -m polypvision -v gui "$1" "${@:5}" 2>"$2/app.log" &
  pid=$!
  sleep "$3"
  import -window root -crop 1280x800+0+0 +repage "$4"
  kill -INT $pid
  wait $pid
' "$PY" "$CLIP" "$WORK" "$SECONDS_TO_PLAY" "$OUT" "${MODEL_ARGS[@]}"
status=$?
# The app logs what its HUD shows every 10 s, and once more when it closes.
grep -E "fps|error|Traceback" "$WORK/app.log" || true
echo "screenshot: $OUT (app exit status $status)"
