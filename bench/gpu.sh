#!/usr/bin/env bash
# Every GPU measurement of jaxal in one call, for a GPU host with JAX (CUDA),
# flax, optax, orbax, absl and scikit-learn installed (PyTorch optional: the
# reference of `bench train`). Nothing is installed from the network.
#
#     bench/gpu.sh OUTDIR [SECONDS]      # run from the repository root
#
# Sections, in this order (most wanted first), each in its own process with its
# own time limit, all within SECONDS (default 590) from the start:
#   env          versions, devices, one pmapped train step on the GPU
#   coldstart_*  TypiClust, ProbCover, MaxHerding at N = 200,000 and 1,000,000,
#                d = 512, b = 10,000 (goal < 60 s each on one GPU)
#   tests        the exactness tests of k-center, the cold-start functions and
#                the uncertainty scores (float64 references) on the GPU backend
#   acquisition  uncertainty scores against the device's read bandwidth; k-center
#                at N = 1M, b = 10,000 against its copy bandwidth (sklearn's CPU
#                loop, section 1, is left out: it measured the host, not the GPU)
#   train        ResNet-18 at 224 and 32 px, float32 and bfloat16, against PyTorch
#   pretrain     a SimCLR step (width 64, batch 512 x 2 views), against PyTorch
#   vit_embed    `jaxal embed` with imported SigLIP 2 B/16, DINOv2 S/14 and B/14
#                at 224 px (512 JPEGs, batch 128), float32, against transformers
#                on CUDA when torch and transformers are installed (jaxal alone
#                otherwise); vit_embed_bf16 the two B models in bfloat16
#                (transformers under bfloat16 autocast)
#   quickstart   README's main job on this GPU (cells.csv and the tables kept)
# Each section writes OUTDIR/<section>.txt as it runs (a killed section keeps
# what it printed; the three cold-start runs end in one coldstart.txt); this
# script prints each section's tail and exit status. QUICK=1 bench/gpu.sh DIR
# checks the script at tiny sizes on any backend.
# If `import jaxal` or the train step fails with the host's flax/optax and
# wheels of the pinned versions are in .whl/, they are installed into
# /tmp/jaxal-site and the check is retried.
set -u
out=${1:?usage: bench/gpu.sh OUTDIR [SECONDS]}
total=${2:-590}
mkdir -p "$out"
start=$(date +%s)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

section() {  # section NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2 left t0 rc
  shift 2
  left=$(( start + total - $(date +%s) - 5 ))
  (( limit > left )) && limit=$left
  if (( limit < 10 )); then
    echo "== $name: skipped (no time left)"
    return
  fi
  t0=$(date +%s)
  echo "== $name (limit ${limit} s) at $(( t0 - start )) s"
  timeout -k 5 "$limit" "$@" > "$out/$name.txt" 2>&1
  rc=$?
  echo "== $name: rc=$rc$( ((rc == 124 || rc == 137)) && echo ' (time limit)') in $(( $(date +%s) - t0 )) s"
  grep -v '^\s*$' "$out/$name.txt" | grep -Ev '^WARNING|^[IWE][0-9]{4} ' | tail -n 14
}

env_check() {
  nvidia-smi -L 2>&1 || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv 2>&1 || true
  "$py" - <<'EOF'
import jaxal  # first: on a CPU it sets XLA:CPU's options before JAX starts
import importlib, time
for m in ("jax", "jaxlib", "flax", "optax", "orbax.checkpoint", "numpy", "sklearn", "torch"):
  try:
    print(f"{m} {importlib.import_module(m).__version__}")
  except Exception as e:  # noqa: BLE001
    print(f"{m}: {type(e).__name__}: {e}")
import jax, jax.numpy as jnp, numpy as np
print("devices:", jax.devices(), "backend:", jax.default_backend())
import sys
from jaxal import _xla_cpu, models
from jaxal.models import train
print("cpu:", _xla_cpu.cpu_description())
assert "tensorflow" not in sys.modules, "import jaxal imported TensorFlow"
model = models.ResNet18(num_classes=10, width=8, stem="cifar")
config = train.TrainConfig(batch_size=16, schedule="constant", learning_rate=0.1,
                           num_epochs=1)
state = train.create_state(model, config, (32, 32, 3))
dev = tuple(jax.local_devices()[:1])
step = train.pmapped_train_step(model, "float32", dev)
rng = np.random.default_rng(0)
batch = train.replicate({"image": rng.standard_normal((16, 32, 32, 3), np.float32),
                         "label": rng.integers(0, 10, 16).astype(np.int32)}, dev)
st = train.replicate(state, dev)
t = time.perf_counter()
for _ in range(3):
  st, m = step(st, batch, np.full(len(dev), 0.1, np.float32))
m = jax.device_get(m)
print("train step ok:", {k: float(np.ravel(v)[0]) for k, v in m.items()},
      f"3 steps with compilation {time.perf_counter() - t:.1f} s")
EOF
}

export -f env_check
export py
section env 60 bash -c env_check
if ! grep -q "^train step ok" "$out/env.txt" && ls .whl/*.whl > /dev/null 2>&1; then
  mv "$out/env.txt" "$out/env_host_packages.txt"  # appended to env.txt below
  echo "== env failed with the host's packages: installing .whl/ and retrying"
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
    --upgrade --target /tmp/jaxal-site .whl/*.whl 2>&1 | tail -n 3
  export PYTHONPATH="/tmp/jaxal-site:$PYTHONPATH"
  section env 60 bash -c env_check
  cat "$out/env_host_packages.txt" >> "$out/env.txt" && rm "$out/env_host_packages.txt"
fi

# QUICK=1: tiny sizes on any backend, to check this script (quickstart skipped).
if [[ "${QUICK:-0}" == 1 ]]; then
  cold=(--large=3000 --large_budget=50 --d=32) train=(--quick --check_gpu_section)
  acq=(--quick --check_gpu_section)
else
  cold=(--large=200000,1000000 --large_budget=10000) train=(--steps=10 --rounds=3)
  acq=(--probs_n=250000)
fi
for m in typiclust probcover maxherding; do
  section "coldstart_$m" 100 "$py" bench/coldstart.py --nocompare --methods="$m" \
    "${cold[@]}" --pool_dir=/tmp/jaxal-pools
done
cat "$out"/coldstart_*.txt > "$out/coldstart.txt" 2> /dev/null
rm -f "$out"/coldstart_*.txt
# near-duplicate pairs and 20 neighbours of 1,000,000 x 768 (goal: under 60 s)
if [[ "${QUICK:-0}" == 1 ]]; then dd=(--n=0 --large=5000 --d=64); else
  dd=(--n=0 --large=1000000); fi
section dedupe 240 "$py" bench/dedupe.py --nocompare "${dd[@]}"

section tests 60 env JAX_PLATFORMS= "$py" -m pytest -q -p no:cacheprovider \
  tests/method/test_kcenter.py tests/method/test_coldstart.py \
  tests/method/test_uncertainty.py \
  -k "brute_force or float64 or exact or tie or by_hand or hand_computed or densest or definition or purity or margin_matches"

section acquisition 60 "$py" bench/acquisition.py --sections=3,4 "${acq[@]}"
section train 110 "$py" bench/train.py --nocpu_section "${train[@]}"
if [[ "${QUICK:-0}" == 1 ]]; then pre=(--quick); else pre=(--width=64 --batch=512); fi
section pretrain 60 "$py" bench/pretrain.py "${pre[@]}"
if [[ "${QUICK:-0}" == 1 ]]; then
  vit=(--quick) vit_bf16=(--quick --models=dinov2_s14)
else  # end to end is bounded by Pillow's decode (8 threads) here, so model alone too
  vit=(--images=512 --batch=128 --rounds=3)
  vit_bf16=("${vit[@]}" --models=siglip2_b16,dinov2_b14)
fi
section vit_embed 150 "$py" bench/vit_embed.py "${vit[@]}"
section vit_embed_bf16 120 "$py" bench/vit_embed.py --dtype=bfloat16 "${vit_bf16[@]}"
if [[ "${QUICK:-0}" != 1 ]]; then
  section quickstart 600 "$py" experiments/quickstart.py --workdir=/tmp/jaxal-quickstart
  [[ -f /tmp/jaxal-quickstart/cells.csv ]] &&
    cp /tmp/jaxal-quickstart/cells.csv "$out/quickstart_cells.csv"
fi
echo "== done in $(( $(date +%s) - start )) s"
