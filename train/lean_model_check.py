"""`python -m persona.train.lean_model_check`: on this interpreter's CUDA GPU, the lean model's
chunked loss and its gradient against transformers' full-logits cross-entropy in float64. Exits
0 when they agree, 1 when they do not, 2 when there is no CUDA GPU to check on. `make test-gpu`
runs it in the training interpreter, the one that has torch."""

from __future__ import annotations

import os
import sys

# Relative error allowed: the chunked loss runs under bf16 autocast, the reference in float64.
LOSS_TOLERANCE = 1e-2
GRADIENT_TOLERANCE = 2e-2


def compare(chunk: int = 128) -> tuple[float, float]:
    """(relative loss error, relative gradient error) on a random batch."""
    import torch

    from persona.train.lean_model import chunked_cross_entropy

    generator = torch.Generator(device="cuda").manual_seed(int.from_bytes(os.urandom(2), "big"))
    batch, length, hidden_size, vocab = 2, 300, 64, 5000
    hidden = torch.randn(batch, length, hidden_size, device="cuda", generator=generator)
    head = torch.randn(vocab, hidden_size, device="cuda", generator=generator) / 8
    labels = torch.randint(0, vocab, (batch, length), device="cuda", generator=generator)
    labels[0, :50] = -100  # an unlabelled prompt

    hidden.requires_grad_(True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
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


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("lean_model_check: this interpreter's torch sees no CUDA GPU", file=sys.stderr)
        return 2
    loss_error, gradient_error = compare()
    print(f"lean_model_check: {torch.cuda.get_device_name()}: loss error {loss_error:.2e} "
          f"(at most {LOSS_TOLERANCE:.0e}), gradient error {gradient_error:.2e} "
          f"(at most {GRADIENT_TOLERANCE:.0e})")
    return 0 if loss_error < LOSS_TOLERANCE and gradient_error < GRADIENT_TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
