#!/usr/bin/env bash
# On a CUDA machine whose python3 already holds torch but that has no network: install the
# wheels benchmarks/gpu_wheels.sh collected (into a folder, not into the image), then run a
# command with them importable.
#   benchmarks/gpu_device.sh COMMAND ...
# GPU_WHEELS (default .gpu-wheels) and GPU_SITE (default /tmp/gpu-site) choose the folders.
set -euo pipefail
wheels=${GPU_WHEELS:-.gpu-wheels}
site=${GPU_SITE:-/tmp/gpu-site}
install() { python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target "$site" "$@"; }
# The import name of a wheel, where it differs from the wheel's name.
module_of() {
  local name=${1%%-*}
  case $name in nvidia_ml_py) echo pynvml ;; py_cpuinfo) echo cpuinfo ;; *) echo "$name" ;; esac
}
if [ ! -f "$site/.installed" ]; then
  install "$wheels"/*.whl
  # extra/ (pydantic, pytest, ...) and ds/ (DeepSpeed and its needs): only what the image lacks
  for wheel in "$wheels"/extra/*.whl "$wheels"/ds/*.whl; do
    [ -e "$wheel" ] || continue
    mod=$(module_of "$(basename "$wheel")")
    python3 -c "import $mod" 2>/dev/null || missing+=("$wheel")
  done
  if [ -n "${missing[*]:-}" ]; then
    echo "gpu_device: installing beside the image: $(for w in "${missing[@]}"; do basename "$w" | cut -d- -f1; done | tr '\n' ' ')"
    install "${missing[@]}"
  fi
  touch "$site/.installed"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 - <<'PY'
import importlib.metadata as m, torch
names = ("torch", "transformers", "bitsandbytes", "xtuner", "mmengine", "peft", "deepspeed")
found = {n: (m.version(n) if n != "torch" else torch.__version__) for n in names
         if n == "torch" or any((d.metadata["Name"] or "").lower() == n for d in m.distributions())}
gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print("gpu_device:", found, "GPUs:", gpus, flush=True)
PY
exec "$@"
