"""Vocabulary-parallel CCE- over torch.distributed: the item table is cut into contiguous item ranges, one a rank of a
process group; every rank holds all rows of e and the same global negative ids (the same index tensor, or the same
Philox draws: one seed for the group). Each rank scores the candidates it owns and keeps per-row statistics (running
max, sum of exponentials, accepted count, the target logit where it owns the target); two all-reduces of O(N) merge
them as a logsumexp: a max of the maxima (and target logits), then one sum of the max-rescaled sums and counts, never
a plain sum of exponentials. The backward forms this shard's dC and its part of dE, and one sum all-reduce of dE
[N, D] gives every rank the whole dE. On the wire per step: 4N floats forward, N*D backward. On CUDA the package's
vocabShard kernels compute the statistics and gradients (no [N, K, D] gather); elsewhere plain PyTorch in chunks."""
import math

import torch
import torch.distributed as dist

from . import _reference

NEG = -3.0e38


def _collective(what, group, fn, *args, **kw):
    """A torch.distributed collective; its error (a dead peer, the group's timeout for a stalled one) comes back
    naming this rank and the step."""
    try:
        return fn(*args, group=group, **kw)
    except RuntimeError as err:
        rank, world = dist.get_rank(group), dist.get_world_size(group)
        raise RuntimeError(f"ccekit vocab-parallel CCE-: rank {rank} of {world}: {what} failed (a rank died or "
                           f"stalled past the process group's timeout): {err}") from err


def shard_layout(c, group, vocab_start=None, num_items=None):
    """(vocab_start, V) of this rank's shard c: given, or from one all-gather of the shard sizes (the shards follow the
    ranks of the group in order)."""
    if vocab_start is not None and num_items is not None:
        return int(vocab_start), int(num_items)
    dev = c.device if dist.get_backend(group) == "nccl" else torch.device("cpu")
    sizes = [torch.zeros(1, dtype=torch.int64, device=dev) for _ in range(dist.get_world_size(group))]
    _collective("all-gather of the shard sizes", group, dist.all_gather, sizes,
                torch.tensor([c.shape[0]], dtype=torch.int64, device=dev))
    sizes = [int(s) for s in sizes]
    rank = dist.get_rank(group)
    start = sum(sizes[:rank]) if vocab_start is None else int(vocab_start)
    return start, sum(sizes) if num_items is None else int(num_items)


def group_seed(group, device):
    """One seed for the whole group (the Philox draws must be the same on every rank): drawn on the group's first
    rank and broadcast."""
    seed = torch.randint(0, 2**62, (1,), dtype=torch.int64)
    if dist.get_backend(group) == "nccl":
        seed = seed.to(device)
    src = dist.get_global_rank(group, 0) if hasattr(dist, "get_global_rank") else 0
    _collective("broadcast of the seed", group, dist.broadcast, seed, src=src)
    return int(seed.item())


def _candidates(negatives, rows, v):
    """The global candidate ids [N, K]: the index tensor, or the Philox draws (K, seed) over the whole catalog."""
    if isinstance(negatives, tuple):
        k, seed = negatives
        return _reference.philox_uniform(rows, k, v, seed, torch.device("cpu"))
    return negatives


def _shard_chunks(e, c, targets, cands, logq, start, v, ignore_index, chunk=2048):
    """The shard's view of each chunk of rows in plain PyTorch (float64 for float64 inputs, fp32 otherwise): the
    rows a:b, their e, the owned accepted candidates, their rows of c, corrected logits, and the target's row of c
    with whether this shard owns it."""
    acc = torch.float64 if e.dtype == torch.float64 else torch.float32
    n, vs = e.shape[0], c.shape[0]
    corr = -logq.to(acc) if logq is not None else None
    cc = c.to(acc)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        ee, t = e[a:b].to(acc), targets[a:b].long()
        live = t != ignore_index
        ids = cands[a:b].to(e.device).long()
        own = (ids >= start) & (ids < start + vs) & (ids != t[:, None]) & live[:, None]
        loc = (ids - start).clamp(0, vs - 1)
        rows = cc[loc]  # [n, K, D] of this chunk
        s = torch.einsum("nd,nkd->nk", ee, rows) + (corr[ids] if corr is not None else math.log(v - 1))
        here = live & (t >= start) & (t < start + vs)
        tl = (t - start).clamp(0, vs - 1)
        yield a, b, ee, own, loc, rows, s, here, tl, cc[tl]


def _torch_stats(e, c, targets, cands, logq, start, v, ignore_index):
    """The shard's statistics in plain PyTorch, in chunks of rows."""
    acc = torch.float64 if e.dtype == torch.float64 else torch.float32
    n = e.shape[0]
    out = [torch.full((n,), NEG, dtype=acc, device=e.device), torch.zeros(n, dtype=acc, device=e.device),
           torch.full((n,), NEG, dtype=acc, device=e.device), torch.zeros(n, dtype=torch.int32, device=e.device)]
    for a, b, ee, own, _, _, s, here, _, ct in _shard_chunks(e, c, targets, cands, logq, start, v, ignore_index):
        s = s.masked_fill(~own, -math.inf)
        m = s.max(1).values
        has = own.any(1)
        out[0][a:b] = torch.where(has, m, torch.full_like(m, NEG))
        out[1][a:b] = torch.where(has, torch.exp(s - m[:, None]).sum(1), torch.zeros_like(m))
        out[3][a:b] = own.sum(1).to(torch.int32)
        s0 = (ee * ct).sum(1)
        out[2][a:b] = torch.where(here, s0, torch.full_like(s0, NEG))
    return out


def _torch_grads(e, c, targets, cands, logq, start, v, ignore_index, lse, logk, share, g):
    """This shard's dC and its part of dE in plain PyTorch, for the merged lse, log k and the others' share."""
    acc = torch.float64 if e.dtype == torch.float64 else torch.float32
    de = torch.zeros(e.shape, dtype=acc, device=e.device)
    dc = torch.zeros(c.shape, dtype=acc, device=e.device)
    for a, b, ee, own, loc, rows, s, here, tl, ct in _shard_chunks(e, c, targets, cands, logq, start, v,
                                                                    ignore_index):
        p = torch.where(own, torch.exp(s - logk[a:b, None] - lse[a:b, None]), torch.zeros_like(s))
        coef = p * g[a:b, None]
        de[a:b] += torch.einsum("nk,nkd->nd", coef, rows)
        dc.index_add_(0, loc.flatten(), (coef[:, :, None] * ee[:, None, :]).flatten(0, 1))
        coef0 = torch.where(here, -share[a:b] * g[a:b], torch.zeros_like(g[a:b]))
        de[a:b] += coef0[:, None] * ct
        dc.index_add_(0, tl, coef0[:, None] * ee)
    return de, dc


def _merge(stats, group):
    """The shards' statistics merged as a logsumexp: lse, log k, the others' share, loss rows, accepted counts."""
    m, l, s0, k = stats
    mx = torch.stack([m, s0])
    _collective("max all-reduce of the statistics", group, dist.all_reduce, mx, op=dist.ReduceOp.MAX)
    big_m, big_s0 = mx[0], mx[1]
    sums = torch.stack([l * torch.exp(m - big_m), k.to(l.dtype)])
    _collective("sum all-reduce of the statistics", group, dist.all_reduce, sums, op=dist.ReduceOp.SUM)
    big_l, big_k = sums[0], sums[1]
    live = big_s0 > NEG / 2  # the target's shard wrote its logit
    some = live & (big_k > 0) & (big_l > 0)
    logk = torch.log(big_k.clamp_min(1))
    neg = torch.where(some, big_m + torch.log(big_l.clamp_min(1e-300)) - logk, torch.full_like(big_m, -math.inf))
    lse = torch.where(live, torch.logaddexp(big_s0, neg), torch.zeros_like(neg))
    gap = neg - big_s0
    loss = torch.where(live, torch.clamp_min(gap, 0) + torch.log1p(torch.exp(-gap.abs())), torch.zeros_like(neg))
    share = torch.where(live, torch.exp(neg - lse), torch.zeros_like(neg))
    return lse, logk, share, loss, big_k.round().to(torch.int32), live


class VocabParallel(torch.autograd.Function):
    """forward: this shard's statistics, merged over the group; backward: this shard's dC, dE summed over the group."""

    @staticmethod
    def forward(ctx, e, c, targets, negatives, logq, start, v, ignore_index, reduction, group, kernels):
        n = targets.shape[0]
        cands = None if kernels else _candidates(negatives, n, v)
        stats = kernels.stats(e, c, targets, negatives, logq, start, v, ignore_index) if kernels else \
            _torch_stats(e, c, targets, cands, logq, start, v, ignore_index)
        acc = torch.float64 if e.dtype == torch.float64 else torch.float32
        lse, logk, share, loss, k, live = _merge([x.to(acc) if x.is_floating_point() else x for x in stats], group)
        ctx.save_for_backward(e, c, targets, lse, logk, share, live, k, *(() if logq is None else (logq,)))
        ctx.args = (negatives, cands, start, v, ignore_index, reduction, group, kernels, logq is not None, k)
        ctx.mark_non_differentiable(k)
        total = loss.sum()
        n_valid = live.sum()
        if reduction == "none":
            out = loss
        else:
            out = total if reduction == "sum" else total / n_valid.clamp_min(1).to(total.dtype)
        return out.to(e.dtype if e.dtype == torch.float64 else torch.float32), k

    @staticmethod
    def backward(ctx, grad_out, _gk):
        e, c, targets, lse, logk, share, live, k = ctx.saved_tensors[:8]
        negatives, cands, start, v, ignore_index, reduction, group, kernels, has_logq, _ = ctx.args
        logq = ctx.saved_tensors[8] if has_logq else None
        g = grad_out.to(lse.dtype)
        if reduction == "none":
            rows = g
        elif reduction == "sum":
            rows = g.expand(lse.shape[0])
        else:
            rows = (g / live.sum().clamp_min(1).to(g.dtype)).expand(lse.shape[0])
        rows = torch.where(live, rows, torch.zeros_like(rows)).contiguous()
        if kernels:
            de, dc = kernels.grads(e, c, targets, negatives, logq, start, v, ignore_index, lse, k, share, rows)
        else:
            de, dc = _torch_grads(e, c, targets, cands, logq, start, v, ignore_index, lse, logk, share, rows)
        _collective("sum all-reduce of dE", group, dist.all_reduce, de, op=dist.ReduceOp.SUM)
        return de.to(e.dtype), dc.to(c.dtype), *(None,) * 9


class CudaKernels:
    """The package's vocabShard kernels (their forward writes the statistics, their backward a shard's gradients)."""

    def __init__(self, src):
        self.src = src

    def _common(self, e, c, targets, negatives, logq, start, v, ignore_index):
        from . import _cuda

        sc = _cuda.scalars(e, c, negatives, ignore_index, rows=targets.shape[0])
        sc.update(VG=v, V2=2 * v, vocab_start=start, logq_uniform=-math.log(v - 1))
        return sc, _cuda.inputs(e, c, targets, negatives, logq)

    def stats(self, e, c, targets, negatives, logq, start, v, ignore_index):
        from . import _cuda

        n = targets.shape[0]
        sc, tensors = self._common(e, c, targets, negatives, logq, start, v, ignore_index)
        out = {name: torch.empty(n, dtype=torch.float32, device=e.device)
               for name in ("part_max", "part_sum", "part_s0")}
        out["kacc"] = torch.empty(n, dtype=torch.int32, device=e.device)
        _cuda.launch(_cuda.pick("forward", e, negatives, logq, src=self.src), e.device, n, dict(tensors, **out), sc)
        return [out["part_max"], out["part_sum"], out["part_s0"], out["kacc"]]

    def grads(self, e, c, targets, negatives, logq, start, v, ignore_index, lse, k, share, rows):
        from . import _cuda

        n = targets.shape[0]
        sc, tensors = self._common(e, c, targets, negatives, logq, start, v, ignore_index)
        f32 = dict(dtype=torch.float32, device=e.device)
        out = {"lse": lse.float().contiguous(), "kacc": k.contiguous(), "neg_share": share.float().contiguous(),
               "dloss": rows.float().contiguous(), "dE": torch.empty(e.shape, **f32), "dC": torch.zeros(c.shape, **f32)}
        _cuda.launch(_cuda.pick("backward", e, negatives, logq, src=self.src), e.device, n, dict(tensors, **out), sc)
        return out["dE"], out["dC"]


def loss(e, c, targets, num_negatives, negatives, item_probs, ignore_index, reduction, seed, group, vocab_start,
         num_items, share_rows=None, positions=None, deterministic=False, dc_by_item=None, in_batch_probs=None):
    """cce_minus_loss(..., process_group=group): checked arguments, one seed for the group, the kernels on CUDA."""
    from ._checks import check_arguments
    from .loss import _draw, _logq

    for name, x in (("share_rows", share_rows), ("positions", positions), ("in_batch_probs", in_batch_probs)):
        if x is not None:
            raise ValueError(f"{name}: not with process_group (vocabulary-parallel CCE- takes per-row negatives)")
    if isinstance(negatives, str) or deterministic or dc_by_item:
        what = "negatives" if isinstance(negatives, str) else "deterministic" if deterministic else "dc_by_item"
        raise ValueError(f"{what}: not with process_group (vocabulary-parallel CCE- takes per-row negatives)")
    if not (dist.is_available() and dist.is_initialized()):
        raise ValueError("process_group: torch.distributed is not initialized")
    start, v = shard_layout(c, group, vocab_start, num_items)
    if c.dim() != 2 or start < 0 or start + c.shape[0] > v:
        raise ValueError(f"vocab_start: the shard [{start}, {start + c.shape[0]}) is not inside the {v} items")
    d = e.shape[-1] if e.dim() == 2 else 0
    # The checks read neither c nor its shape beyond [V, D]: a zero-stride stand-in of the whole table.
    whole = c.new_zeros(1, d).expand(v, d) if d else c
    _, _, _, rows, k, ignore_index, _, seed, _ = check_arguments(
        e, whole, targets, num_negatives, negatives, item_probs, ignore_index, reduction, seed, None, False, None)
    if negatives is None:
        seed = group_seed(group, e.device) if seed is None else seed
    philox = negatives is None and item_probs is None
    if negatives is None and not philox:
        negatives = _draw(rows, k, v, item_probs, e.device, seed)
    logq = _logq(item_probs, v, e.device)
    kernels = None
    if e.is_cuda and torch.float64 not in (e.dtype, c.dtype):
        from . import _cuda

        src = _cuda.source_of(vocab=True)
        sampling = "uniform" if item_probs is None else "given"
        kind = "philox" if philox else "tensor"
        if _cuda.available(e.device) and _cuda._has_source_kernels(c.dtype, sampling, kind, None, src):
            e = e.to(c.dtype)
            neg0 = (k, 0) if philox else negatives
            for pass_ in ("forward", "backward"):  # a D no emitted schedule serves: one error before any work
                try:
                    _cuda.pick(pass_, e, neg0, None if logq is None else logq, src=src)
                except _cuda.CcekitCudaError as err:
                    raise ValueError(f"e: hidden size D = {e.shape[1]}: {err}") from err
            kernels = CudaKernels(src)
    neg = (k, seed) if philox else negatives.to(torch.int32 if kernels else torch.int64).contiguous()
    lq = None if logq is None else logq.to(torch.float32 if kernels else torch.float64).contiguous()
    if kernels is None and lq is not None and e.dtype != torch.float64:
        lq = lq.float()
    t = targets.to(torch.int32 if kernels else torch.int64).contiguous()
    return VocabParallel.apply(e.contiguous(), c.contiguous(), t, neg, lq, start, v, ignore_index, reduction,
                               group, kernels)[0]
