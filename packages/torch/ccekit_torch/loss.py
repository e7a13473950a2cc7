"""The public loss: negative sampling, the autograd Function over the package's kernels, the CPU fallback. The
passes a call runs come from manifest.json's "steps" (_cuda.step_for); this file holds no choice of its own."""
import torch

from . import _reference
from ._checks import check_arguments

_HOST_FACTOR_ELEMENTS = 2**27
_NONE = (None,) * 11  # no gradients for targets, negatives, logq, the options, n_valid and the source's


def _draw(n, k, v, item_probs, device, seed):
    gen = None
    if seed is not None:
        gen = torch.Generator(device=device)
        gen.manual_seed(seed)
    if item_probs is None:
        return torch.randint(0, v, (n, k), device=device, generator=gen)
    # Normalized in float64 first: tiny probabilities would otherwise all round to 0 in float32.
    q = item_probs.to(device=device, dtype=torch.float64)
    q = (q / q.sum()).to(torch.float32)
    return torch.multinomial(q, n * k, replacement=True, generator=gen).view(n, k)


def _logq(item_probs, v, device):
    """log q(v): uniform sampling uses q = 1/(V-1) (the contract), else log of the normalized item_probs."""
    if item_probs is None:
        return None
    q = item_probs.to(device=device, dtype=torch.float64)
    return torch.log(q / q.sum())



class CceMinusFunction(torch.autograd.Function):
    """CUDA kernels emitted by ccekit. Steps 'one' and 'byItem' (mean / sum with a gradient) compute the loss and
    the gradients in autograd's forward, for the upstream scale of a unit upstream gradient (1 for sum, 1/n_valid
    for mean), so backward returns them as they are unless the upstream gradient is not 1; step 'split' runs the
    forward kernel there and the backward kernel, with the upstream gradient per row, in backward.

    Host syncs: the argument checks' one transfer (it carries the mean's n_valid, a kernel scalar), the upstream
    gradient's value in backward, and with deterministic=True the bound of |dC| (max|e|)."""

    @staticmethod
    def forward(ctx, e, c, targets, negatives, logq, ignore_index, reduction, share=None, deterministic=False,
                by_item=False, n_valid=None, src=None, extra=None):
        from . import _byitem, _cuda, _tile

        # src, extra: the candidate source's key (_cuda.source_of) and tensors (positions, logq_batch).
        ctx.src, ctx.extra = src, extra
        io = dict(src=src, extra=extra) if src is not None else {}
        ctx.e_dtype, ctx.c_dtype = e.dtype, c.dtype  # gradients come back in the inputs' own dtypes
        if e.dtype != c.dtype:
            # The kernels run at the item table's dtype (autocast: fp16 hidden states, an fp32 table): a cast of
            # e [N, D], never one of c [V, D].
            e = e.to(c.dtype)
        tiled = _tile.available_sources(e.device, e.dtype, src) if src is not None and src[0] else \
            share and _tile.available(e.device, share, e.dtype)
        backend = _tile if tiled else _cuda
        needs = "dc" if ctx.needs_input_grad[1] else "de" if ctx.needs_input_grad[0] else "none"
        step = _cuda.step_for(reduction, needs, by_item)
        ctx.step = step
        if step["host"] == "split":
            loss_rows, lse, kacc = backend.forward(step, e, c, targets, negatives, logq, ignore_index, share, **io)
            ctx.backend, ctx.share, ctx.det = backend, share, deterministic
            ctx.philox = negatives if isinstance(negatives, tuple) else None
            ctx.no_negatives = negatives is None
            # A placeholder tensor when the kernels draw them (or there are none: in-batch candidates only).
            saved_neg = targets if ctx.philox or negatives is None else negatives
            ctx.save_for_backward(e, c, targets, saved_neg, lse, kacc, *(() if logq is None else (logq,)))
            ctx.has_logq, ctx.ignore_index, ctx.reduction = logq is not None, ignore_index, reduction
            live = (targets != ignore_index).sum()
            ctx.live = live
            if reduction == "none":
                return loss_rows.to(ctx.e_dtype)
            total = loss_rows.sum()
            return total if reduction == "sum" else total / live.clamp_min(1).to(total.dtype)
        # The kernels take the mean's 1/n_valid as a scalar (a unit upstream gradient then needs no pass over dC
        # afterwards); n_valid comes from the argument checks' one host transfer.
        if n_valid is None:
            n_valid = int((targets != ignore_index).sum())
        grad_scale = (1.0 / n_valid if n_valid else 0.0) if reduction == "mean" else 1.0
        run = _byitem.run if step["host"] == "byItem" else backend.one
        loss_rows, de, acc, scale = run(step, e, c, targets, negatives, logq, ignore_index, share, deterministic,
                                        grad_scale, grad_scale * n_valid, **io)
        ctx.dc_scale = scale
        # Saved (released once backward has run), so autograd takes the returned dC without a copy.
        ctx.save_for_backward(de, acc)
        total = loss_rows.sum()
        return total if reduction == "sum" else total / max(n_valid, 1)

    @staticmethod
    def backward(ctx, grad_out):
        from ._cuda import grad_result

        if ctx.step["host"] != "split":
            de, acc = ctx.saved_tensors
            # 16-bit gradients take one conversion pass anyway: the upstream gradient can stay on the device (no
            # host sync), but PyTorch's multiply from fp32 into 16 bits with a device factor runs at about half
            # the bandwidth of a plain conversion. The factor is read on the host (a sync) for an fp32 gradient (1
            # returns the kernels' buffer as it is) and for an item table of 2**27 elements or more, where the
            # slower pass costs more than the sync (H200: bench/results/h200-issue14/README.md).
            wide = ctx.e_dtype == torch.float32 or (acc is not None and ctx.c_dtype == torch.float32)
            g = float(grad_out) if wide or (acc is not None and acc.numel() >= _HOST_FACTOR_ELEMENTS) else \
                grad_out.detach().float()
            dc = None if acc is None else grad_result(acc, ctx.dc_scale, g, ctx.c_dtype)
            return grad_result(de, 1.0, g, ctx.e_dtype), dc, *_NONE
        saved = ctx.saved_tensors
        e, c, targets, negatives, lse, kacc = saved[:6]
        if ctx.philox or ctx.no_negatives:
            negatives = ctx.philox
        logq = saved[6] if ctx.has_logq else None
        n = targets.shape[0]
        g = grad_out.float()
        if ctx.reduction == "none":
            dloss = g.contiguous()
        elif ctx.reduction == "sum":
            dloss = g.expand(n).contiguous()
        else:
            dloss = (g / ctx.live.clamp_min(1).float()).expand(n).contiguous()
        io = dict(src=ctx.src, extra=ctx.extra) if ctx.src is not None else {}
        de, acc, scale = ctx.backend.backward(ctx.step, e, c, targets, negatives, logq, lse, kacc, dloss,
                                              ctx.ignore_index, ctx.share, ctx.det, **io)
        return grad_result(de, 1.0, 1.0, ctx.e_dtype), grad_result(acc, scale, 1.0, ctx.c_dtype), *_NONE


def _run_cuda(e, c, targets, negatives, logq, ignore_index, reduction, share_rows, deterministic, by_item, tiles,
              n_valid):
    """The kernels' call on checked arguments. negatives: an index tensor, or (K, seed) for the in-kernel sampler;
    tiles: the Triton tile kernels run the shared negatives; n_valid: the rows whose target is not ignore_index
    (from the checks' one host transfer)."""
    from . import _cuda

    if isinstance(negatives, tuple):
        neg = negatives
    elif negatives.dtype == torch.int64 and _cuda.reads_int64(tiles):
        # Read as it is (ids checked to lie in [0, V) < 2**31, so each low 32-bit word is the id): no copy.
        neg = negatives.contiguous()
    else:
        neg = negatives.to(torch.int32).contiguous()
    return CceMinusFunction.apply(
        e.contiguous(), c.contiguous(), targets.to(torch.int32).contiguous(), neg,
        None if logq is None else logq.to(torch.float32).contiguous(), ignore_index, reduction, share_rows,
        deterministic, by_item, n_valid,
    )


def reference_cce_minus_loss(e, c, targets, negatives, item_probs=None, ignore_index=-100, reduction="mean"):
    """The same math in plain PyTorch (autograd does the backward); the CPU path."""
    v = c.shape[0]
    return _reference.cce_minus(e, c, targets, negatives, _logq(item_probs, v, e.device), ignore_index, reduction)


def _run_cuda_sources(e, c, targets, *, in_batch, negatives, logq, in_batch_logq, positions, ignore_index,
                      reduction, share_rows, deterministic, n_valid):
    """The CUDA kernels of the candidate sources (in-batch, mixed, positions) on checked arguments: in_batch None
    or "in-batch"; negatives None, an index tensor or (K, seed) for the in-kernel sampler (the drawn part);
    logq / in_batch_logq [V] float64 log q of the drawn / in-batch part, or None (uniform q = 1/(V-1));
    positions None or [M] row indices into e, read in place (no [M, D] copy of e)."""
    from . import _cuda

    part = {"in-batch": "batch", "in-batch-group": "group"}.get(in_batch)
    src = _cuda.source_of(part, "uniform" if in_batch_logq is None else "given",
                          positions is not None)
    extra = {}
    if positions is not None:
        extra["positions"] = positions.to(torch.int32).contiguous()
    if in_batch_logq is not None:
        extra["logq_batch"] = in_batch_logq.to(torch.float32).contiguous()
    if isinstance(negatives, torch.Tensor):
        negatives = negatives.to(torch.int32).contiguous()
    return CceMinusFunction.apply(
        e.contiguous(), c.contiguous(), targets.to(torch.int32).contiguous(), negatives,
        None if logq is None else logq.to(torch.float32).contiguous(), ignore_index, reduction, share_rows,
        deterministic, False, n_valid, src, extra)


def _rank_seed(seed, same_across_ranks):
    """The seed of the negatives drawn here (a random one when None). Under torch.distributed it is mixed with the
    rank, so each rank draws different negatives, unless same_across_ranks."""
    seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else seed
    if same_across_ranks or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return seed
    return (seed ^ ((torch.distributed.get_rank() + 1) * 0x9E3779B97F4A7C15)) % 2**64


def _sources(e, c, targets, negatives, k, item_probs, in_batch_probs, positions, ignore_index, reduction, seed,
             share_rows, deterministic, n_valid, rows, same_across_ranks=False):
    """The new candidate sources on checked arguments: the CUDA hook where the package serves them, else the
    PyTorch path (on any device). k: the drawn (or given) negatives per row or group, 0 for none."""
    in_batch = negatives if isinstance(negatives, str) else None
    given = negatives if isinstance(negatives, torch.Tensor) else None
    drawn = k if given is None else 0
    philox = bool(drawn) and item_probs is None
    if drawn:
        seed = _rank_seed(seed, same_across_ranks)
    v = c.shape[0]
    logq, ib_logq = _logq(item_probs, v, e.device), _logq(in_batch_probs, v, e.device)
    if e.is_cuda and torch.float64 not in (e.dtype, c.dtype):
        from . import _cuda

        supports = getattr(_cuda, "supports_sources", None)
        if supports is not None and _cuda.available(e.device) and supports(
                dtype=c.dtype, d=e.shape[1], in_batch=in_batch, drawn=drawn, philox=philox,
                item_probs=item_probs is not None, in_batch_probs=in_batch_probs is not None,
                positions=positions is not None, share_rows=share_rows, deterministic=deterministic,
                given=given is not None):
            neg = given if given is not None else (k, seed) if philox else \
                _draw(rows, k, v, item_probs, e.device, seed) if drawn else None
            return _run_cuda_sources(
                e, c, targets, in_batch=in_batch, negatives=neg, logq=logq, in_batch_logq=ib_logq,
                positions=positions, ignore_index=ignore_index, reduction=reduction, share_rows=share_rows,
                deterministic=deterministic, n_valid=n_valid)
    # The PyTorch path: the same draws as the kernels' (Philox for uniform, torch.multinomial for item_probs).
    parts = []
    if in_batch is not None:
        group = share_rows if in_batch == "in-batch-group" else None
        parts.append(_reference.in_batch_part(targets, ignore_index, group, ib_logq))
    if given is not None:
        parts.append((given, share_rows, logq, None))
    elif philox:
        parts.append((_reference.philox_uniform(rows, k, v, seed, e.device, stream=1 if share_rows else 0),
                      share_rows, None, None))
    elif drawn:
        parts.append((_draw(rows, k, v, item_probs, e.device, seed), share_rows, logq, None))
    if positions is not None:
        e = e[positions.long()]  # the PyTorch path gathers [M, D]; autograd scatters dE back (0 elsewhere)
    return _reference.cce_sources(e, c, targets, parts, ignore_index, reduction)


def cce_minus_loss(e, c, targets, *, num_negatives=None, negatives=None, item_probs=None, in_batch_probs=None,
                   positions=None, ignore_index=-100, reduction="mean", seed=None, share_rows=None,
                   deterministic=False, dc_by_item=None, process_group=None, vocab_start=None, num_items=None,
                   same_negatives_across_ranks=False):
    """CCE- loss. e [N, D] hidden states, c [V, D] item embeddings, targets [N] item ids (or ignore_index).

    Negatives: a tensor [N, K] of item ids drawn from q, or num_negatives=K to draw them here (uniform over the
    catalog, or from item_probs). A negative equal to the row's target is rejected; k_i = accepted count;
    logits s_i0 = e.c_t, s_ij = e.c_n - log(k_i q(n)) (uniform: q = 1/(V-1)); loss_i = logsumexp - s_i0.
    Rows whose target is ignore_index contribute nothing and leave the mean. Accumulation is fp32.

    share_rows=R (16, 32, 64, 128; the package carries kernels for 64 and 128): row-tile-shared negatives. Each
    group of R consecutive rows shares one set of K negatives (negatives is then [ceil(N/R), K]); every row
    still sees K i.i.d. draws from q, so its estimator is unchanged, and the kernels compute logits and
    gradients as tile products (tensor cores through Triton when it is installed).

    Candidate sources (one or more parts; k_i counts the accepted candidates of ALL parts of row i, a candidate
    equal to the row's target is rejected, and s_ij = e.c_n - log(k_i q_p(n)) with the q_p of the part p the
    candidate came from):
      drawn     the negatives above: a tensor, or num_negatives=K drawn from item_probs / uniform (q = 1/(V-1)).
      in-batch  negatives="in-batch": the candidates of every row are the targets of all rows of the call
                (ignored targets are none; the row's own target and each duplicate of it are rejected; other
                duplicates count once each). negatives="in-batch-group" with share_rows=R: the targets of the
                rows of the row's group of R consecutive rows. q of this part: in_batch_probs ([V] item
                frequencies, normalized: log q = log(p / sum p)), or uniform q = 1/(V-1) when None.
      mixed     negatives="in-batch" (or "in-batch-group") with num_negatives=K: the in-batch part plus K drawn
                per row (per group of share_rows rows when share_rows is set), each part with its own q
                (item_probs or uniform for the drawn part; seed seeds it).
    The estimator: Z_hat_i = (1/k_i) sum_j exp(e.c_j) / q_p(j)(n_j) = sum_p (k_ip / k_i) Z_hat_ip, the average of
    each part's importance-sampling estimate Z_hat_ip = (1/k_ip) sum_{j in p} exp(e.c_j) / q_p(n_j) of
    sum_{n != t} exp(e.c_n), weighted by the part's accepted count k_ip. exp(lse_i) - exp(s_i0) = Z_hat_i, so
    it estimates the full softmax's normalizer without the target: exactly in expectation for uniform draws
    (q = 1/(V-1)), and up to the usual factor 1/(1 - q(t)) of rejection for a non-uniform q (an accepted draw
    has probability q(n) / (1 - q(t))). In-batch targets drawn i.i.d. from in_batch_probs make that part such a
    sample (real batches are only approximately: correlated, popularity-biased targets).

    positions=P (a 1-D int tensor [M] of distinct row indices into e [N_E, D]): the loss has M rows; row m uses
    e[P[m]] and targets[m] (targets [M]; drawn negatives [M, K], or [ceil(M/R), K] with share_rows; in-batch
    candidates are the M targets; groups are of consecutive loss rows). dE is zero on rows of e not listed. The
    CUDA kernels read e in place (no [M, D] copy); the PyTorch path gathers e[P].

    On CUDA the package's kernels run in-batch of the whole batch (uniform or in_batch_probs q), mixed with
    uniform in-kernel draws shared by share_rows (64, 128) rows, and positions with per-row negatives (a tensor,
    item_probs draws or in-kernel uniform ones) or with in-batch candidates; 16-bit tables through the Triton tile
    kernels when Triton is installed. Other combinations (in-batch-group, per-row draws in mixed, deterministic)
    and the CPU run the PyTorch path (about [chunk, K_total] logits per slice of rows; autograd keeps them for
    the backward, so in-batch with large N is memory-hungry there).

    deterministic=True: the CUDA kernels accumulate the item-embedding gradient in int64 fixed point with
    integer atomics (units of 2^-62 of a bound of |dC|), so it is bit-identical from run to run; it costs an
    int64 [V, D] buffer from the forward to the backward (mean / sum; while the backward runs for 'none').
    The CPU path is deterministic anyway.

    dc_by_item (per-row negatives, mean / sum, float dC): the item-embedding gradient reduced by item instead of
    one float atomic per (row, negative): the forward computes dE in one sweep, then chunks of rows are counted,
    grouped by item and summed per run of one item (about 48 MiB of extra memory). None picks it for rows of at
    least 128 elements or an item gradient larger than the GPU's L2 cache (dc_by_item_default); True / False
    force it (True with share_rows, deterministic=True or reduction="none" is an error).

    int64 negatives (a contiguous tensor, as torch.randint draws them) are read as they are on CUDA when the
    package carries the int64 kernels; int32 ones too. The kernels run at c's dtype: a hidden-state tensor of
    another dtype (autocast) is cast to it ([N, D]; c [V, D] is never copied when it is contiguous).

    The checks and the CUDA step read c only through the kernels: a NaN or Inf in c gives a NaN loss instead of
    an error. With an fp32 c, a mean or sum reduction and a unit upstream gradient the kernels' dC accumulator is
    the returned gradient; otherwise one elementwise pass of [V, D] makes it (times the upstream gradient, to
    c's dtype, or from the deterministic fixed point), after the accumulator's one zero fill.

    seed (num_negatives only): an int in [0, 2**64) that makes the drawn negatives reproducible. Under
    torch.distributed (DDP) the seed is mixed with the rank, so each rank draws different negatives;
    same_negatives_across_ranks=True draws the same on every rank.

    process_group=g (torch.distributed): vocabulary-parallel CCE-. c is this rank's shard, the items
    vocab_start .. vocab_start + c.shape[0] - 1 of a catalog of num_items (both default to the shards in rank order:
    one all-gather of their sizes); every rank passes all rows of e and the same targets and global negative ids
    (the same tensor, or num_negatives drawn with one seed for the group: seed, or one broadcast from the group's
    first rank). Each rank scores the candidates it owns; two all-reduces of O(N) floats merge the statistics as
    a logsumexp, and one sum all-reduce of dE [N, D] gives every rank the whole dE (c's gradient is the shard's).
    Per rank: its shard, O(N) statistics, no [N, K] index tensor when drawn in the kernels. Not with share_rows,
    positions, in-batch candidates or deterministic=True. in_batch_probs
    without an in-batch mode, item_probs or seed with an in-batch mode that draws nothing, and repeated or
    out-of-range positions are errors.
    float64 inputs take the PyTorch path on any device. Bad arguments raise ValueError("<argument>: ...")
    before anything large is allocated; on CUDA, so does a hidden size D that no emitted kernel serves.
    """
    if process_group is not None:
        from . import _vocab

        return _vocab.loss(e, c, targets, num_negatives, negatives, item_probs, ignore_index, reduction, seed,
                           process_group, vocab_start, num_items, share_rows=share_rows, positions=positions,
                           deterministic=deterministic, dc_by_item=dc_by_item, in_batch_probs=in_batch_probs)
    n, d, v, rows, k, ignore_index, share_rows, seed, n_valid = check_arguments(
        e, c, targets, num_negatives, negatives, item_probs, ignore_index, reduction, seed, share_rows, deterministic,
        dc_by_item, in_batch_probs, positions)
    if isinstance(negatives, str) or positions is not None:
        return _sources(e, c, targets, negatives, k, item_probs, in_batch_probs, positions, ignore_index, reduction,
                        seed, share_rows, deterministic, n_valid, rows, same_negatives_across_ranks)
    # Uniform negatives that the caller did not pass are drawn inside the kernels (Philox4x32-10, no index
    # tensor); the CPU path draws the same items with the same generator.
    philox = negatives is None and item_probs is None
    cuda = None
    tiles = False
    # float64 (either tensor): the PyTorch path, on the GPU.
    if e.is_cuda and torch.float64 not in (e.dtype, c.dtype):
        from . import _cuda, _tile

        if _cuda.available(e.device):
            cuda = _cuda
            if dc_by_item is None:
                dc_by_item = _cuda.dc_by_item_default(c, share_rows, deterministic)
            # Before anything is drawn or allocated: the package's kernels must serve this D (and share_rows).
            tiles = bool(share_rows) and _tile.available(e.device, share_rows, c.dtype)
            _cuda.check_supported(c.dtype, d, "uniform" if item_probs is None else "given",
                                  "philox" if philox else "tensor", share_rows, deterministic,
                                  dc_by_item and reduction != "none", tiles)
    logq = _logq(item_probs, v, e.device)
    if negatives is None:
        seed = _rank_seed(seed, same_negatives_across_ranks)
    if not philox and negatives is None:
        negatives = _draw(rows, k, v, item_probs, e.device, seed)
    if cuda is not None:
        return _run_cuda(e, c, targets, (k, seed) if philox else negatives, logq, ignore_index, reduction, share_rows,
                         deterministic, bool(dc_by_item), tiles, n_valid)
    if philox:
        negatives = _reference.philox_uniform(rows, k, v, seed, e.device, stream=1 if share_rows else 0)
    return _reference.cce_minus(e, c, targets, negatives, logq, ignore_index, reduction, share=share_rows)
