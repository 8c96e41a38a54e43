"""The warmup of the generated config's epoch schedule: mmengine's LinearLR, except where the
warmup, converted from epochs to iterations, would span fewer than 2 (a dataset of fewer than
2 / warmup_ratio packed sequences, or warmup_ratio 0): then there is none. mmengine refuses a
span of 0 (end must be larger than begin), and a span of 1 holds the rate at start_factor for
the whole run, because the cosine after it continues from wherever the warmup stopped: a
training that learns nothing and says nothing. Runs inside the training env (mmengine)."""

from __future__ import annotations

from mmengine.optim import LinearLR


class Warmup(LinearLR):
    @classmethod
    def build_iter_from_epoch(cls, *args, begin=0, end=1, by_epoch=True, epoch_length=None,
                              **kwargs):
        first, last = int(begin * epoch_length), int(end * epoch_length)
        if last - first < 2:  # no room to rise: the rate stays where it is for that step
            kwargs.update(start_factor=1.0, end_factor=1.0)
            last = first + 1
        return cls(*args, begin=first, end=last, by_epoch=False, **kwargs)
