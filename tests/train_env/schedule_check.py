"""Run by tests/test_train_config.py inside the training env (mmengine, XTuner).

  python schedule_check.py CONFIG   the learning rate, step by step, that the generated config's
                                    epoch schedule gives over one epoch of N iterations, for
                                    several N, with its warmup as written and with mmengine's
                                    plain LinearLR in its place; prints a JSON report
"""

import json
import sys

import torch
from mmengine.config import Config
from mmengine.optim import LinearLR
from mmengine.registry import PARAM_SCHEDULERS
from mmengine.registry.build_functions import build_scheduler_from_cfg


def rates(schedule: list, iterations: int, base: float) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base)
    schedulers = []
    for item in schedule:
        cfg = dict(item)
        if "convert_to_iter_based" in cfg:
            cfg["epoch_length"] = iterations
        schedulers.append(build_scheduler_from_cfg(cfg, PARAM_SCHEDULERS,
                                                   dict(optimizer=optimizer)))
    seen = []
    for _ in range(iterations):  # as mmengine's loop: the rate used, then the schedulers step
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return seen


def main(path: str) -> dict:
    cfg = Config.fromfile(path)
    schedule = [dict(item) for item in cfg.param_scheduler]
    stock = [{**item, "type": LinearLR} if i == 0 else item for i, item in enumerate(schedule)]
    report = {}
    for iterations in (10, 30, 60, 520):
        ours = rates(schedule, iterations, cfg.lr)
        try:
            plain = max(rates(stock, iterations, cfg.lr)) / cfg.lr
        except ValueError as error:  # mmengine's: a warmup of 0 iterations
            plain = str(error)
        report[iterations] = {"first": ours[0] / cfg.lr, "peak": max(ours) / cfg.lr,
                              "stock_peak": plain}
    return report


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
