#!/usr/bin/env bash
# Use PolypVision as a user who installs the wheel would (CI runs this after the tests):
# build the wheel, install it with the cpu extra into a fresh virtual environment outside the
# checkout, run `polypvision info` and `polypvision annotate demo`, then the headless tests
# (no Qt, no TensorFlow) from a copy of tests/, importing the installed package.
#   KEEP_WHEEL_DIR=1  keep the temporary folder (its path is printed)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/polypvision-wheel.XXXXXX")"
[ -n "${KEEP_WHEEL_DIR:-}" ] || trap 'rm -rf "$WORK"' EXIT
t0=$SECONDS

BUILD_PY="$PY"; [ -x .venv/bin/python ] && BUILD_PY=.venv/bin/python
"$BUILD_PY" -m pip wheel --no-deps -q -w "$WORK/dist" "$REPO"
WHEEL="$(ls "$WORK"/dist/polypvision-*.whl)"
echo "wheel: $(basename "$WHEEL"), $(du -m "$WHEEL" | cut -f1) MB"

"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install -q "$WHEEL[cpu]"   # exactly what a CPU-only user installs

# From here on nothing may come from the checkout.
cd "$WORK"
unset PYTHONPATH POLYPVISION_MODELS
export XDG_CACHE_HOME="$WORK/cache" POLYPVISION_DATA="$WORK/data" QT_QPA_PLATFORM=offscreen
"$V/polypvision" info > info.json
"$V/python" - <<'PYCHECK'
import json, pathlib
info = json.load(open("info.json"))
rt = info["runtime"]
assert rt["package"] == "onnxruntime", rt  # the cpu extra, nothing else
models = pathlib.Path(info["models_dir"])
assert "site-packages" in models.parts, models  # the wheel's own copy
default = json.loads((models / "manifest.json").read_text())["cpu_default"]
assert pathlib.Path(info["path"]) == models / default, (info["path"], default)  # the shipped default model
print(f"info: polypvision {info['polypvision']}, {rt['package']} {rt['version']}, provider {info['provider']}, "
      f"model {info['contract']['name']}")
PYCHECK
mkdir -p "$WORK/x"
"$V/polypvision" annotate demo -o "$WORK/x/demo.mp4" --quiet
test -s "$WORK/x/demo.mp4"

"$V/python" -m pip install -q "$WHEEL[cpu,test]"
cp -r "$REPO/tests" "$WORK/tests"
POLYPVISION_EXPECT_INSTALLED=1 "$V/python" -m pytest -q -p no:cacheprovider -c "$REPO/pyproject.toml" \
  --rootdir "$WORK" -m "not gui and not train and not slow and not repo" tests
echo "installed-wheel check passed in $((SECONDS - t0)) s"
