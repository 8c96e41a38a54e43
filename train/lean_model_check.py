"""`python -m persona.train.lean_model_check [--device cpu]`: on this interpreter's CUDA GPU (or
its CPU), the lean model's chunked loss and its gradient against transformers' full-logits
cross-entropy in float64, on a batch with unlabelled prompts. Exits 0 when they agree, 1 when
they do not, 2 when there is no CUDA GPU to check on. `make test-gpu` runs it in the training
interpreter, the one that has torch; the CPU check runs in `make test` (tests/test_train_config.py)."""

from __future__ import annotations

import os
import sys

# Relative error allowed: on CUDA the chunked loss runs under bf16 autocast, the reference in
# float64; on the CPU both sides multiply float32 (the CPU training's head stays float32).
TOLERANCES = {"cuda": (1e-2, 2e-2), "cpu": (1e-5, 1e-5)}


def compare(device: str = "cuda", chunk: int = 128) -> tuple[float, float]:
    """(relative loss error, relative gradient error) on a random batch."""
    import torch

    from persona.train.lean_model import chunked_cross_entropy

    generator = torch.Generator(device=device).manual_seed(int.from_bytes(os.urandom(2), "big"))
    batch, length, hidden_size, vocab = 2, 300, 64, 5000
    hidden = torch.randn(batch, length, hidden_size, device=device, generator=generator)
    head = torch.randn(vocab, hidden_size, device=device, generator=generator) / 8
    labels = torch.randint(0, vocab, (batch, length), device=device, generator=generator)
    labels[0, :50] = -100  # an unlabelled prompt
    labels[1, 100:220] = -100  # and a context turn between two answers

    hidden.requires_grad_(True)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = chunked_cross_entropy(hidden, head, labels, chunk=chunk)
    loss.backward()

    reference_hidden = hidden.detach().double().requires_grad_(True)
    logits = reference_hidden[:, :-1] @ head.double().t()
    reference = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab),
                                                  labels[:, 1:].reshape(-1))
    reference.backward()
    loss_error = abs(loss.item() - reference.item()) / reference.item()
    gradient_error = ((hidden.grad.double() - reference_hidden.grad).norm()
                      / reference_hidden.grad.norm()).item()
    return loss_error, gradient_error


def main(argv: list[str] | None = None) -> int:
    import torch

    device = "cpu" if (argv if argv is not None else sys.argv[1:]) == ["--device", "cpu"] else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("lean_model_check: this interpreter's torch sees no CUDA GPU", file=sys.stderr)
        return 2
    loss_error, gradient_error = compare(device)
    loss_tolerance, gradient_tolerance = TOLERANCES[device]
    where = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"lean_model_check: {where}: loss error {loss_error:.2e} "
          f"(at most {loss_tolerance:.0e}), gradient error {gradient_error:.2e} "
          f"(at most {gradient_tolerance:.0e})")
    return 0 if loss_error < loss_tolerance and gradient_error < gradient_tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
