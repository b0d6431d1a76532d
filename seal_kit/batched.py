"""Batched inner loop: the LoRA adapters of many candidates trained together over one frozen base.

    from seal_kit.batched import BatchedLoRA
    lora = BatchedLoRA(inner)                                   # inner: an InnerLoop
    results = lora.train([(examples, seed, {}), (examples2, seed2, {"lr": 3e-4})])   # one adapter each
    lora.load(1)                       # candidate 1's adapter into the InnerLoop's slot (evaluate, save)
    with lora.rows([0, 0, 1, 1]):      # or route rows of one batch to their own adapters (generation)
        ...

One at a time, every candidate pays a full forward/backward per step on its own small batch. Here
step s takes the s-th batch of every candidate still training and packs them into rows as wide as
the longest example (position ids restart per example, so attention stays inside it; no padding
between examples), and each token goes through its own candidate's adapter: tokens are grouped by
adapter and multiplied with the stacked LoRA weights in two batched matmuls. The frozen base
weights are read once per step for all candidates. Each candidate keeps its own everything:
initialisation (the InnerLoop's reset under its seed), data order, batch size, epochs, learning
rate, loss normalisation (mean over its own tokens), and Adam state and step count; a candidate
that has done its steps stops updating. So the adapters equal those of `InnerLoop.train` run one
after another, within float tolerance (tests/test_batched.py checks it). Generation routes whole
rows instead (`rows`), so K adapted models answer in one batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .inner_loop import ADAPTER, InnerLoop, InnerLoopConfig, InnerLoopResult, batch_order, checkpointing, encode_examples, lr_factor

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, which train_lora uses


def check_batchable(config: InnerLoopConfig, batch: int = 2) -> None:
    """Refuse, naming the settings, an inner loop that candidates cannot train together (`batch` > 1):
    packed steps have no padding and step once per batch."""
    if batch > 1 and (config.pad_to is not None or config.grad_accumulation != 1):
        raise ValueError(f"BATCH_CANDIDATES = {batch}: candidates trained together are packed without padding and "
                         f"step once per batch, so the reference's padding (PAD_TO = {config.pad_to}) and "
                         f"gradient accumulation ({config.grad_accumulation}) need BATCH_CANDIDATES = 1")


class BatchedLoRA:
    """Stacked LoRA weights (candidate, ...) for every adapted layer of an InnerLoop's model."""

    def __init__(self, inner: InnerLoop):
        self.inner = inner
        self.layers = inner.slot.layers()
        self.A: list[torch.Tensor] = []  # per layer: (K, r, in)
        self.B: list[torch.Tensor] = []  # per layer: (K, out, r)
        self._owner: torch.Tensor | None = None  # the adapter of each row, or of each packed token
        self._layouts: dict = {}

    @property
    def size(self) -> int:
        return self.A[0].shape[0] if self.A else 0

    # -- routing ------------------------------------------------------------------------------------
    def _hook(self, i: int):
        scaling = self.layers[i].scaling[ADAPTER]

        def add_delta(module, args, out):
            x = args[0].to(self.A[i].dtype)
            flat = x.reshape(-1, x.shape[-1])
            gather, scatter, width = self._layout(flat.shape[0])
            grouped = flat.index_select(0, gather).view(self.size, width, -1)  # (K, width, in), padded
            h = torch.bmm(grouped, self.A[i].transpose(1, 2)) * scaling  # (K, width, r)
            delta = torch.bmm(h, self.B[i].transpose(1, 2)).flatten(0, 1).index_select(0, scatter)  # token order
            return out + delta.view(out.shape).to(out.dtype)  # as peft: lora_B(lora_A(x)) * scaling
        return add_delta

    def _layout(self, n: int):
        """Where each of a forward call's n tokens goes: `gather` lists, adapter by adapter, the tokens
        routed to it (padded to `width` with token 0, whose results are never read), `scatter` where
        each token's result lies in that grouped order. Computed once per token count, not per layer."""
        if n not in self._layouts:
            owner = self._owner if self._owner.numel() == n else self._owner.repeat_interleave(n // self._owner.numel())
            counts = torch.bincount(owner, minlength=self.size)
            width = int(counts.max())
            order = torch.argsort(owner, stable=True)
            starts = torch.cumsum(counts, 0) - counts
            slot = owner[order] * width + torch.arange(n, device=owner.device) - starts[owner[order]]
            gather = torch.zeros(self.size * width, dtype=torch.long, device=owner.device)
            gather[slot] = order
            scatter = torch.empty(n, dtype=torch.long, device=owner.device)
            scatter[order] = slot
            self._layouts[n] = (gather, scatter, width)
        return self._layouts[n]

    @contextlib.contextmanager
    def _routed(self, owner: torch.Tensor):
        if self._owner is not None:
            raise RuntimeError("BatchedLoRA routes do not nest")
        self._owner, self._layouts = owner.to(self.A[0].device), {}
        handles = [layer.get_base_layer().register_forward_hook(self._hook(i)) for i, layer in enumerate(self.layers)]
        try:
            with self.inner.model.disable_adapter():
                yield self.inner.model
        finally:
            for handle in handles:
                handle.remove()
            self._owner, self._layouts = None, {}

    def rows(self, adapters: list[int]):
        """Context: the model's own adapter is off and row n of every batch goes through candidate
        `adapters[n]`'s adapter (batches must have exactly len(adapters) rows; generation)."""
        return self._routed(torch.tensor(adapters, dtype=torch.long))

    def tokens(self, owner: torch.Tensor):
        """Context: token t of a single packed sequence goes through adapter owner[t] (training)."""
        return self._routed(owner)

    @torch.no_grad()
    def load(self, k: int) -> None:
        """Copy candidate k's adapter into the InnerLoop's own slot: the model is then candidate k's θ'."""
        for layer, a, b in zip(self.layers, self.A, self.B):
            layer.lora_A[ADAPTER].weight.copy_(a[k])
            layer.lora_B[ADAPTER].weight.copy_(b[k])

    # -- training -----------------------------------------------------------------------------------
    @torch.no_grad()
    def _init(self, seeds: list[int]) -> None:
        """Each candidate's start is exactly the InnerLoop's fresh adapter under its seed."""
        stacks = [([], []) for _ in self.layers]
        for seed in seeds:
            self.inner.reset(seed)
            for (a, b), layer in zip(stacks, self.layers):
                a.append(layer.lora_A[ADAPTER].weight.detach().clone())
                b.append(layer.lora_B[ADAPTER].weight.detach().clone())
        self.A = [torch.stack(a) for a, _ in stacks]
        self.B = [torch.stack(b) for _, b in stacks]

    def train(self, jobs: list[tuple[list, int, dict]], progress: bool = False,
              desc: str = "batched inner loop") -> list[InnerLoopResult]:
        """Train one fresh adapter per job (examples, seed, config overrides) together; the adapters
        are then in `A`/`B` (use `load(k)` or `rows`). Returns each job's InnerLoopResult; `seconds`
        is the shared wall time divided among the jobs."""
        if not jobs:
            raise ValueError("BatchedLoRA.train needs at least one job; got none")
        configs = [dataclasses.replace(self.inner.config, **overrides) for _, _, overrides in jobs]
        for n, ((examples, _, _), config) in enumerate(zip(jobs, configs)):
            if not examples:
                raise ValueError(f"BatchedLoRA.train: job {n} has no examples (score an empty edit without training)")
            if config.dropout:
                raise ValueError(f"BatchedLoRA.train: LoRA dropout must be 0 (paper: 0), got {config.dropout}: "
                                 "per-row dropout masks would not match the one-at-a-time loop")
            check_batchable(config, max(2, len(jobs)))
        began = time.perf_counter()
        encoded = [encode_examples(self.inner.tokenizer, examples, config.max_length)
                   for (examples, _, _), config in zip(jobs, configs)]
        schedules = [batch_order(len(enc), config.batch_size, config.epochs, seed)  # as InnerLoop.train visits them
                     for enc, config, (_, seed, _) in zip(encoded, configs, jobs)]
        self._init([seed for _, seed, _ in jobs])
        params = self.A + self.B
        for p in params:
            p.requires_grad_(True)
        model = self.inner.model
        model.train()
        try:
            with checkpointing(model, any(c.gradient_checkpointing for c in configs)):
                losses, tokens = self._steps(encoded, schedules, configs, progress, desc)
        finally:
            model.eval()
            for p in params:
                p.requires_grad_(False)
                p.grad = None
        share = (time.perf_counter() - began) / len(jobs)
        return [InnerLoopResult(losses[k], len(losses[k]), tokens[k], share) for k in range(len(jobs))]

    def _steps(self, encoded, schedules, configs, progress, desc):
        """Step s: the s-th batch of every candidate still training, packed; one backward; each candidate's
        gradient clipped to its own norm (as train_lora clips one adapter); masked AdamW at each
        candidate's scheduled learning rate."""
        params = self.A + self.B
        device, n_jobs = params[0].device, len(schedules)
        moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
        steps = torch.zeros(n_jobs, device=device, dtype=params[0].dtype)
        losses, tokens = [[] for _ in schedules], [0] * n_jobs
        pad = self.inner.tokenizer.pad_token_id
        for s in tqdm(range(max(len(x) for x in schedules)), desc=desc, disable=not progress, leave=False):
            active = [k for k, sched in enumerate(schedules) if s < len(sched)]
            packed = _pack([(k, encoded[k][i]) for k in active for i in schedules[k][s]], pad, device)
            mask = torch.zeros(n_jobs, dtype=torch.bool, device=device)
            mask[active] = True
            with self.tokens(packed.owner) as model:  # backward too: checkpointing re-runs the forward
                logits = model(input_ids=packed.ids, position_ids=packed.positions, use_cache=False).logits
                nll = F.cross_entropy(logits.flatten(0, 1).float(), packed.targets, ignore_index=-100,
                                      reduction="none")
                real = (packed.targets != -100).to(nll.dtype)
                loss_sum = torch.zeros(n_jobs, device=device).index_add(0, packed.owner, nll * real)
                count = torch.zeros(n_jobs, device=device).index_add(0, packed.owner, real)
                per_job = loss_sum[mask] / count[mask]  # each candidate's mean over its own label tokens
                per_job.sum().backward()  # so each adapter's gradient comes from its own loss only
            steps += mask
            _clip(params, [c.max_grad_norm for c in configs])
            lr = torch.tensor([c.lr * lr_factor(c, s, len(sched)) for c, sched in zip(configs, schedules)],
                              device=device, dtype=params[0].dtype)
            _adam(params, moments, mask, steps, lr)
            for k, value in zip(active, per_job.tolist()):
                losses[k].append(value)
            for k, n in packed.lengths:
                tokens[k] += n
        return losses, tokens


@dataclasses.dataclass
class _Packed:
    ids: torch.Tensor        # (R, W): the step's examples laid end to end in rows as wide as the longest
    positions: torch.Tensor  # (R, W): restart at 0 for each example, so attention stays within it
    targets: torch.Tensor    # (R * W,): the next token within the same example, -100 where none or masked
    owner: torch.Tensor      # (R * W,): the candidate each token belongs to (row pads: the row's last)
    lengths: list            # (candidate, tokens) per example


def _pack(examples: list[tuple[int, tuple[list[int], list[int]]]], pad_id: int, device) -> _Packed:
    """First-fit decreasing into rows of the longest example's width: no example is cut or split,
    attention costs sum(row width^2) rather than (all tokens)^2, and little is padding."""
    width = max(len(x) for _, (x, _) in examples)
    rows: list[list] = []
    for k, (x, y) in sorted(examples, key=lambda e: -len(e[1][0])):
        row = next((r for r in rows if sum(len(e[1][0]) for e in r) + len(x) <= width), None)
        if row is None:
            rows.append(row := [])
        row.append((k, (x, y)))
    ids, positions, targets, owner = [], [], [], []
    for row in rows:
        for k, (x, y) in row:
            ids += x
            positions += range(len(x))
            targets += y[1:] + [-100]  # HF's causal-LM shift, kept inside the example
            owner += [k] * len(x)
        pad = width * (len(ids) // width + (len(ids) % width > 0)) - len(ids)
        ids += [pad_id] * pad
        positions += range(positions[-1] + 1, positions[-1] + 1 + pad)  # after the last example: never attended
        targets += [-100] * pad
        owner += [owner[-1]] * pad
    as_tensor = lambda v: torch.tensor(v, dtype=torch.long, device=device)  # noqa: E731
    return _Packed(as_tensor(ids).view(len(rows), width), as_tensor(positions).view(len(rows), width),
                   as_tensor(targets), as_tensor(owner), [(k, len(x)) for k, (x, _) in examples])


@torch.no_grad()
def _clip(params, max_norms: list[float | None]) -> None:
    """torch.nn.utils.clip_grad_norm_ per candidate: row k of every stacked gradient scaled so that
    candidate k's gradient norm is at most max_norms[k] (None: left alone)."""
    if all(m is None for m in max_norms):
        return
    norms = torch.stack([p.grad.float().pow(2).flatten(1).sum(1) for p in params]).sum(0).sqrt()
    limit = torch.tensor([float("inf") if m is None else m for m in max_norms], device=norms.device)
    scale = (limit / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(scale.view((-1,) + (1,) * (p.dim() - 1)).to(p.grad.dtype))


@torch.no_grad()
def _adam(params, moments, mask, steps, lr) -> None:
    """AdamW (weight decay 0, as train_lora) on stacked weights, per candidate: only rows in `mask`
    move, each with its own step count and learning rate."""
    beta1, beta2 = BETAS
    t = steps.clamp(min=1)
    step_size = torch.where(mask, lr / (1 - beta1 ** t), 0)
    bias2_sqrt = (1 - beta2 ** t).sqrt()
    for p, (m, v) in zip(params, moments):
        shape = (-1,) + (1,) * (p.dim() - 1)
        keep = mask.view(shape)
        g = p.grad
        m.copy_(torch.where(keep, m.lerp(g, 1 - beta1), m))
        v.copy_(torch.where(keep, v * beta2 + (1 - beta2) * g * g, v))
        p.sub_(step_size.view(shape) * m / (v.sqrt() / bias2_sqrt.view(shape) + EPS))
        p.grad = None
