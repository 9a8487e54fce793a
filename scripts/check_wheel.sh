#!/usr/bin/env bash
# Use PolypVision as a user who installs the wheel would (CI runs this after the tests):
# build the wheel and check what it carries (the models, manifest and splits as package data,
# no repository tool), install it with the cpu extra into a fresh virtual environment outside
# the checkout, run `polypvision info`, `polypvision annotate demo` and every user command's
# --help (`gui --help` included), then the headless tests (no Qt, no TensorFlow) from a copy of
# tests/, importing the installed package.
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
"$BUILD_PY" - "$WHEEL" <<'PYCHECK'
import json, sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
names = set(wheel.namelist())
manifest = json.loads(wheel.read("polypvision/models/manifest.json"))
need = {"polypvision/models/README.md", "polypvision/splits/two-centre.json",
        "polypvision/training/imagenet/mobilenet_v2-b0353104-features.npz"}
need |= {f"polypvision/models/{v}" for v in manifest.values() if str(v).endswith(".onnx")}
assert need <= names, sorted(need - names)
# repository tools and the old copied-data folder stay out of the wheel
bad = sorted(n for n in names if n.endswith("/tables.py") or "/_data/" in n
             or n.split("/")[0] in ("scripts", "benchmarks", "tests", "models", "splits"))
assert not bad, bad
print(f"wheel carries {sum(n.endswith('.onnx') for n in names)} models, "
      f"{sum(n.startswith('polypvision/splits/') for n in names)} split files, no repository tool")
PYCHECK

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
# Every user command answers --help from the wheel (gui too: its help needs no Qt), and the
# maintainer's `tables` is not one of them (python scripts/tables.py in a checkout).
COMMANDS="$("$V/python" -c '
import argparse
from polypvision.cli import build_parser
sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
print(" ".join(sub.choices))')"
for cmd in annotate gui bench devices info demo train export evaluate accuracy alarms batch report; do
  case " $COMMANDS " in *" $cmd "*) ;; *) echo "check_wheel: '$cmd' is not a command of the wheel" >&2; exit 1;; esac
done
case " $COMMANDS " in *" tables "*) echo "check_wheel: 'tables' ships in the wheel" >&2; exit 1;; esac
"$V/polypvision" --help > /dev/null
for cmd in $COMMANDS; do
  "$V/polypvision" "$cmd" --help > "help-$cmd.txt" || { echo "check_wheel: polypvision $cmd --help failed" >&2; exit 1; }
done
echo "--help runs for: $COMMANDS"

"$V/python" -m pip install -q "$WHEEL[cpu,test]"
cp -r "$REPO/tests" "$WORK/tests"
POLYPVISION_EXPECT_INSTALLED=1 "$V/python" -m pytest -q -p no:cacheprovider -c "$REPO/pyproject.toml" \
  --rootdir "$WORK" -m "not gui and not train and not slow and not repo" tests
echo "installed-wheel check passed in $((SECONDS - t0)) s"
