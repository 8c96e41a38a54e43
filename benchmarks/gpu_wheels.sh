#!/usr/bin/env bash
# Collect, on a machine with PyPI, the wheels the training stack needs on a CUDA machine that has
# Python 3.12 and torch but no network (benchmarks/gpu_device.sh installs them there).
#   benchmarks/gpu_wheels.sh [DIR]        (default DIR: .gpu-wheels, keep it out of git)
# bitsandbytes' wheel holds one library per CUDA and ROCm release (43 MB); only the CUDA 13 and
# CPU ones are kept, so the whole folder travels in ~20 MB.
set -euo pipefail
dir=${1:-.gpu-wheels}
mkdir -p "$dir/extra"
get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any "$@"; }
# What XTuner 0.2.0 needs beyond an image with torch, accelerate, numpy, pyyaml, safetensors, pandas.
get -d "$dir" addict==2.4.0 bitsandbytes==0.50.2 datasets==5.0.1 dill==0.4.1 et_xmlfile==2.0.0 \
  fsspec==2026.6.0 huggingface_hub==0.36.2 loguru==0.7.3 mmengine==0.10.6 multiprocess==0.70.19 \
  openpyxl==3.1.5 peft==0.21.2 platformdirs==4.14.8 termcolor==3.3.0 tokenizers==0.21.4 \
  transformers==4.48.0 xtuner==0.2.0 yapf==0.43.0
python3 -m pip wheel -q --no-deps -w "$dir" transformers_stream_generator==0.0.5  # source only on PyPI
# Installed only where the image lacks them (the persona package and the tests).
get -d "$dir/extra" pydantic==2.14.4 pydantic_core==2.50.5 annotated-types==0.8.0 \
  typing-inspection==0.4.5 pytest==8.4.2 pluggy==1.6.0 iniconfig==2.1.0
python3 - "$dir" <<'PY'
import pathlib, sys, zipfile
for wheel in pathlib.Path(sys.argv[1]).glob("bitsandbytes-*.whl"):
    keep = lambda name: not (name.endswith(".so") and "libbitsandbytes_" in name
                             and not any(t in name for t in ("cuda13", "cpu")))
    trimmed = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            if not keep(item.filename):
                continue
            data = src.read(item)
            if item.filename.endswith("RECORD"):
                data = b"\n".join(l for l in data.split(b"\n") if keep(l.split(b",")[0].decode())) 
            dst.writestr(item, data)
    trimmed.replace(wheel)
PY
du -sh "$dir"
