"""XTuner's SupervisedFinetune with two memory savings for CUDA training and a faster loss
(`build_lean_model`).

Where a 7B QLoRA step spends memory besides the 4-bit weights (Qwen2.5-7B shape, 2048 tokens):

  * peft's prepare_model_for_kbit_training casts every non-4-bit parameter to float32, so the
    frozen input embedding and output head (0.55B parameters each for a 152k vocabulary) take
    4.4 GB instead of 2.2 GB, and the cast itself peaks higher still. They are frozen: keeping
    them in the compute dtype loses nothing the optimizer could use, so peft never sees them
    (the small norm weights still become float32, as peft wants).
  * An untied input embedding is only a table lookup: it stays in host memory and each step
    copies the looked-up rows (tokens x hidden, 22 MB for 3072 tokens of the 7B) to the GPU,
    which frees 1.1 GB of GPU memory for the 7B. A tied one is the output head too and stays.
  * The loss: transformers builds the logits of every position over the whole vocabulary,
    upcasts them to float32 and keeps them (and their gradient) for backward: 2048 x 152064 x 4
    bytes = 1.25 GB per copy. `chunked_cross_entropy` computes the same mean cross-entropy a
    chunk of positions at a time and writes the gradient of the hidden states during the
    forward pass, so at most one chunk of float32 logits exists at any time; and it takes only
    the labelled positions through the head (the answers: 40 % of the default card's tokens),
    which on the CPU saves most of the head's share of a step (docs/training.md).

On the CPU only the loss differs (no GPU to keep the embedding off, float32 weights already):
`TrainOptions.lean_model` is on for CUDA where the head is frozen (QLoRA and LoRA), and on the
CPU on request only (docs/training.md, "A shorter CPU step").

The generated config imports it as `persona.train.lean_model`; it builds after the same patches
as cpu_patches.build_model.
"""

from __future__ import annotations

import contextlib

import torch

IGNORE_INDEX = -100
CHUNK_ELEMENTS = 1 << 25  # float32 logits per chunk: 128 MB whatever the vocabulary


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """mean over labelled positions of cross_entropy(hidden @ weight.T, labels), for a frozen
    weight. Forward computes the loss and d loss / d hidden chunk by chunk; backward only
    scales that saved gradient."""

    @staticmethod
    def forward(ctx, hidden, weight, labels, chunk):
        compute = torch.get_autocast_dtype("cuda") if (
            hidden.is_cuda and torch.is_autocast_enabled("cuda")) else hidden.dtype
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(compute)
            valid_count = (labels != IGNORE_INDEX).sum().clamp(min=1)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad = torch.empty_like(hidden) if ctx.needs_input_grad[0] else None
            for start in range(0, hidden.shape[0], chunk):
                h = hidden[start:start + chunk].to(compute)
                y = labels[start:start + chunk]
                valid = y != IGNORE_INDEX
                target = y.clamp(min=0).unsqueeze(1)
                logits = (h @ w.t()).float()
                lse = torch.logsumexp(logits, dim=-1)
                total += ((lse - logits.gather(1, target).squeeze(1)) * valid).sum()
                if grad is not None:
                    # softmax - one_hot(target), zero for unlabelled rows, over the label count
                    probs = logits.sub_(lse.unsqueeze(1)).exp_()
                    probs.scatter_add_(1, target, torch.full_like(target, -1, dtype=probs.dtype))
                    probs.mul_((valid.float() / valid_count).unsqueeze(1))
                    grad[start:start + chunk] = (probs.to(compute) @ w).to(grad.dtype)
                del logits
        ctx.save_for_backward(grad)
        return total / valid_count

    @staticmethod
    def backward(ctx, grad_loss):
        (grad,) = ctx.saved_tensors
        return grad * grad_loss.to(grad.dtype), None, None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor,
                          chunk: int | None = None) -> torch.Tensor:
    """Causal-LM loss of hidden states [B, T, H] through a frozen head [V, H] against labels
    [B, T] (not yet shifted; IGNORE_INDEX where unlabelled), as transformers computes it."""
    if weight.requires_grad:
        raise ValueError("chunked_cross_entropy computes no gradient for the output head; "
                         "use it only with a frozen head (LoRA/QLoRA)")
    hidden = hidden[:, :-1].reshape(-1, hidden.shape[-1])
    labels = labels[:, 1:].reshape(-1)
    labelled = labels != IGNORE_INDEX
    if not bool(labelled.all()):
        # Unlabelled positions (prompts, context turns) add nothing to the loss or its gradient:
        # only the labelled ones go through the head (40 % of the default card's tokens).
        hidden, labels = hidden[labelled], labels[labelled]
    chunk = chunk or max(1, CHUNK_ELEMENTS // weight.shape[0])
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, labels, chunk)


class HostEmbedding(torch.nn.Module):
    """A frozen embedding table kept in (pinned) host memory, outside the module's parameters so
    that moving the model to the GPU leaves it there; its output goes to the ids' device."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.table = embedding.weight.detach().to("cpu")
        if torch.cuda.is_available():
            self.table = self.table.pin_memory()
        self.padding_idx = embedding.padding_idx
        self.num_embeddings, self.embedding_dim = self.table.shape

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = torch.nn.functional.embedding(ids.cpu(), self.table, self.padding_idx)
        return rows.to(ids.device, non_blocking=True)


@contextlib.contextmanager
def _peft_skips(model_params: list):
    """While active, xtuner's prepare_model_for_kbit_training does not see `model_params`' data
    (an empty float32 stand-in takes its place), so it neither upcasts nor copies them."""
    import xtuner.model.sft as sft

    original = sft.prepare_model_for_kbit_training

    def prepare(model, *args, **kwargs):
        params = {id(p): p for p in model_params(model)}
        saved = {key: param.data for key, param in params.items()}
        for param in params.values():
            param.data = torch.empty(0, dtype=torch.float32, device=param.device)
        try:
            return original(model, *args, **kwargs)
        finally:
            for key, param in params.items():
                param.data = saved[key]

    sft.prepare_model_for_kbit_training = prepare
    try:
        yield
    finally:
        sft.prepare_model_for_kbit_training = original


def _embedding_and_head(model) -> list:
    modules = (model.get_input_embeddings(), model.get_output_embeddings())
    return [module.weight for module in modules if getattr(module, "weight", None) is not None]


def _lean_class():
    from xtuner.model import SupervisedFinetune
    from xtuner.parallel.sequence import get_sequence_parallel_world_size

    class LeanSupervisedFinetune(SupervisedFinetune):
        def __init__(self, *args, chunked_loss: bool = True, frozen_dtype=None,
                     host_embedding: bool = False, **kwargs):
            with _peft_skips(_embedding_and_head) if frozen_dtype is not None else contextlib.nullcontext():
                super().__init__(*args, **kwargs)
            self.chunked_loss = chunked_loss
            if frozen_dtype is not None:
                self._frozen_to(frozen_dtype)
            if host_embedding:
                self._embedding_to_host()

        def _causal_lm(self):
            return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

        def _frozen_to(self, dtype) -> None:
            model = self._causal_lm()
            for module in (model.get_input_embeddings(), model.get_output_embeddings()):
                weight = getattr(module, "weight", None)
                if weight is not None and not weight.requires_grad and weight.dtype == torch.float32:
                    weight.data = weight.data.to(dtype)
            # Outside autocast (EvaluateChatHook's generation) the float32 final norm meets a
            # head in `dtype`: the head takes its input in its own dtype.
            head = model.get_output_embeddings()
            if head is not None:
                head.register_forward_pre_hook(
                    lambda module, args: (args[0].to(module.weight.dtype), *args[1:]))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

        def _embedding_to_host(self) -> None:
            model = self._causal_lm()
            embedding = model.get_input_embeddings()
            head = model.get_output_embeddings()
            if (not torch.cuda.is_available() or not isinstance(embedding, torch.nn.Embedding)
                    or (head is not None and head.weight is embedding.weight)):
                return  # nothing to gain without a GPU, and a tied table is the head as well
            hooks = dict(embedding._forward_hooks)  # enable_input_require_grads' hook
            host = HostEmbedding(embedding)
            host._forward_hooks.update(hooks)
            model.set_input_embeddings(host)
            del embedding
            torch.cuda.empty_cache()

        def compute_loss(self, data, data_samples=None):
            if not self.chunked_loss or get_sequence_parallel_world_size() > 1:
                return super().compute_loss(data, data_samples)
            model = self._causal_lm()
            inputs = {key: value for key, value in data.items() if key != "labels"}
            hidden = model.get_decoder()(**inputs, use_cache=False).last_hidden_state
            head = model.get_output_embeddings().weight
            return {"loss": chunked_cross_entropy(hidden, head, data["labels"])}

    return LeanSupervisedFinetune


def build_lean_model(start_adapter: str | None = None, **kwargs):
    """The generated config's model builder on CUDA (see the module docstring)."""
    from persona.train.cpu_patches import apply, with_start_adapter

    apply()
    return with_start_adapter(_lean_class()(**kwargs), start_adapter)
