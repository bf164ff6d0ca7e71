#!/usr/bin/env bash
# GPU readiness check in one command (docs/gpu.md):
#
#     bash scripts/gpu_check.sh OUT_DIR [scripts/gpu_check.py options, e.g. --parts parity,sampler]
#
# A GPU machine may have JAX, flax, optax, orbax, transformers and torch but not the project's other
# dependencies, and no package index. Those missing are installed from a folder of wheels beside the
# checkout: $JAXRLVR_WHEELS, else the first of .whl/, wheels/, shared/wheels/, ../wheels/ that exists
# (pip install --no-index --find-links). Prepare it on a machine with an index (docs/gpu.md):
#
#     python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#         --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#         -d .whl grain array-record portpicker ml-collections math-verify latex2sympy2_extended \
#         antlr4-python3-runtime tensorboardx
#
# Then runs scripts/gpu_check.py OUT_DIR, which writes OUT_DIR/gpu_check.{json,md,log}; pip's output goes
# to OUT_DIR/install.log. Exit status: gpu_check.py's (0 iff every part passed).
set -u
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu_check.sh OUT_DIR [gpu_check.py options]}
shift
py=${PYTHON:-python3}
mkdir -p "$out"

# import name:distribution of every runtime dependency in pyproject.toml
deps="jax:jax flax:flax optax:optax orbax.checkpoint:orbax-checkpoint grain:grain ml_collections:ml-collections
transformers:transformers tokenizers:tokenizers safetensors:safetensors numpy:numpy sympy:sympy
math_verify:math-verify sentencepiece:sentencepiece tqdm:tqdm pyarrow:pyarrow matplotlib:matplotlib
tensorboardX:tensorboardx absl:absl-py scipy:scipy sacrebleu:sacrebleu"
missing=$("$py" - $deps <<'EOF'
import importlib.util, sys
def absent(mod):
    try:
        return importlib.util.find_spec(mod) is None
    except ModuleNotFoundError:  # a missing parent package
        return True
print(" ".join(d.split(":")[1] for d in sys.argv[1:] if absent(d.split(":")[0])))
EOF
)

wheels=${JAXRLVR_WHEELS:-}
if [ -z "$wheels" ]; then
  for d in .whl wheels shared/wheels ../wheels; do
    if [ -d "$d" ]; then wheels=$d; break; fi
  done
fi

if [ -n "$missing" ]; then
  echo "gpu_check.sh: missing packages: $missing"
  if [ -n "$wheels" ]; then
    echo "gpu_check.sh: installing them from $wheels (no index)"
    if ! "$py" -m pip install --no-index --find-links "$wheels" $missing >"$out/install.log" 2>&1; then
      echo "gpu_check.sh: pip install failed (see $out/install.log); parts that need them will fail:"
      tail -5 "$out/install.log"
    fi
  else
    echo "gpu_check.sh: no wheel folder (set JAXRLVR_WHEELS or create .whl/; see docs/gpu.md for the"
    echo "  pip download command); parts that need the missing packages will fail"
  fi
fi

PYTHONUNBUFFERED=1 "$py" scripts/gpu_check.py "$out" "$@"
