"""The persona's weight change scaled at merge time: a copy of a finished run whose merged model
is base + ALPHA x (merged - base), as if its LoRA's alpha had been ALPHA times larger; with
--average, the change averaged over several runs of the same base first (a "soup" of runs
trained with different seeds). Asks whether a weaker (or stronger, or averaged) change trades
identity for leakage and general skill better than a different recipe does, with no training:
docs/training.md, "Sixth round".

    .venv/bin/python benchmarks/delta_scale.py --from RUN --out COPY --alpha 0.8
    .venv/bin/python benchmarks/delta_scale.py --from RUN --average RUN2 RUN3 --out COPY --alpha 1
    .venv/bin/persona eval --card cards/xiaocong.yaml --out COPY --report-dir DIR

The scaling runs in the serving environment (torch and safetensors; `persona setup` builds it).
Every tensor of the merged model is scaled against the base's tensor of the same name; those the
merge did not change (embeddings, norms) come out as they were, up to their float16 rounding.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WEIGHTS = "model.safetensors"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="source", type=Path, required=True, help="a finished run")
    parser.add_argument("--out", type=Path, required=True, help="the copy to write (new)")
    parser.add_argument("--alpha", type=float, required=True,
                        help="the factor on the merge's change (1 leaves the run as it is)")
    parser.add_argument("--average", type=Path, nargs="+", default=[],
                        help="other finished runs of the same base whose changes are averaged in")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def scale(base_file: Path, merged_file: Path, alpha: float,
          others: tuple[Path, ...] = ()) -> dict[str, int]:
    """Rewrite merged_file as base + alpha x the mean of (merged - base) over it and `others`
    (merged weights of other runs); counts of tensors changed."""
    import torch
    from safetensors.torch import load_file, save_file

    base = load_file(str(base_file))
    merged = load_file(str(merged_file))
    more = [load_file(str(other)) for other in others]
    for weights, source in ((merged, merged_file), *zip(more, others)):
        if set(weights) != set(merged) or set(weights) - set(base):
            raise SystemExit(f"{source} does not hold the tensors of {merged_file} over the base "
                             f"{base_file}: are they runs of one base?")
    scaled, changed = {}, 0
    for name, tensor in merged.items():
        start = base[name].to(torch.float32)
        delta = sum(w[name].to(torch.float32) - start for w in (merged, *more)) / (1 + len(more))
        changed += bool(delta.abs().max() > 0)
        scaled[name] = (start + alpha * delta).to(tensor.dtype)
    save_file(scaled, str(merged_file), metadata={"format": "pt"})
    return {"tensors": len(merged), "changed": changed}


def inside(args: argparse.Namespace) -> None:
    from persona.run_folder import RunFolder

    run = RunFolder(args.out)
    base = Path(run.read_manifest()["base_model"])
    others = tuple(RunFolder(other).merged / WEIGHTS for other in args.average)
    counts = scale(base / WEIGHTS, run.merged / WEIGHTS, args.alpha, others)
    runs = f"the mean change of {1 + len(others)} runs" if others else "change"
    print(f"delta_scale: {run.merged} = base + {args.alpha} x {runs} "
          f"({counts['changed']} of {counts['tensors']} tensors changed by the merge)")


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.inside:
        return inside(args)
    from persona import envs

    if args.out.exists():
        sys.exit(f"{args.out} exists: the scaling writes a new copy")
    shutil.copytree(args.source, args.out, ignore=shutil.ignore_patterns(
        ".lock", "work", "prefer", "refine", "export"))
    command = [str(envs.python("serve")), __file__, "--inside", "--from", str(args.source),
               "--out", str(args.out.resolve()), "--alpha", str(args.alpha)]
    if args.average:
        command += ["--average", *(str(other.resolve()) for other in args.average)]
    subprocess.run(command, cwd=REPO, env=envs.command_env("serve"), check=True)


if __name__ == "__main__":
    main()
