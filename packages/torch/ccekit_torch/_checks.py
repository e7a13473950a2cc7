"""Argument checks of cce_minus_loss: one ValueError naming the first bad argument, before anything large is
allocated. They read e [N, D], targets, the negatives and item_probs; never the item table c [V, D] beyond its
shape and dtype (a NaN or Inf in c reaches the loss as NaN, as it would through any loss)."""
import math
import operator

import torch

_INT_DTYPES = (torch.int32, torch.int64, torch.int16, torch.uint8, torch.int8)
_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_MAX_OFFSET = 2**31 - 1
_SHARES = (16, 32, 64, 128)
# torch.multinomial draws from at most 2**24 categories.
_MAX_MULTINOMIAL = 2**24


def _fail(argument, message):
    raise ValueError(f"{argument}: {message}")


def _shape(t):
    return tuple(t.shape)


def _int(name, x, what, lo=None, hi=None):
    """x as a Python int: an int or an integer scalar such as numpy's; not a bool, a float or a tensor."""
    if isinstance(x, (bool, torch.Tensor)) or type(x).__name__ == "bool_" or not hasattr(type(x), "__index__"):
        _fail(name, f"must be {what}, got {x!r} ({type(x).__name__})")
    x = operator.index(x)
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        _fail(name, f"must be {what}, got {x}")
    return x


def _tensor(name, t, what):
    if not isinstance(t, torch.Tensor):
        _fail(name, f"expected {what}, got {type(t).__name__}")
    if t.layout != torch.strided:
        _fail(name, f"expected a dense tensor, got layout {t.layout}")


def _one_device(tensors):
    """All tensors on one device, else name the odd one: the first off the device most of them share (a tie goes
    to e's device), e.g. 'e: is on cuda:0 while c and targets are on cpu'."""
    devs = [(name, t.device) for name, t in tensors]
    ref = max(devs, key=lambda nd: (sum(d == nd[1] for _, d in devs), nd[0] == "e"))[1]
    odd = [name for name, d in devs if d != ref]
    if odd:
        on = [name for name, d in devs if d == ref]
        who = on[0] if len(on) == 1 else ", ".join(on[:-1]) + " and " + on[-1]
        dev = dict(devs)[odd[0]]
        _fail(odd[0], f"is on {dev} while {who} {'is' if len(on) == 1 else 'are'} on {ref}; all must be on one device")


def _first(mask):
    """Index (a tuple) of the first True element of a boolean tensor."""
    return tuple(int(i) for i in mask.nonzero()[0])


def check_arguments(e, c, targets, num_negatives, negatives, item_probs, ignore_index, reduction, seed=None,
                    share_rows=None, deterministic=False, dc_by_item=None, in_batch_probs=None, positions=None):
    """Every argument, one ValueError naming the first bad one. In order: types and shapes (no data read), the
    options, devices, 32-bit sizes (before anything is allocated), then the values (of e, targets, negatives,
    positions, item_probs and in_batch_probs; never of c). Common to the CPU and CUDA paths; returns n (the loss
    rows: N, or M with positions), d, v, rows (of drawn negatives), k (0: none drawn), and ignore_index,
    share_rows and seed as Python ints, and the live rows."""
    _tensor("e", e, "a 2-D float tensor [N, D] of hidden states")
    if e.dim() != 2:
        _fail("e", f"expected a 2-D tensor [N, D] of hidden states, got shape {_shape(e)}")
    if e.dtype not in _FLOAT_DTYPES:
        _fail("e", f"dtype {e.dtype} is not float32, float16, bfloat16 or float64")
    n, d = e.shape
    n_e = n
    if n == 0:
        _fail("e", "N = 0 rows")
    if d == 0:
        _fail("e", "hidden size D = 0")
    _tensor("c", c, "a 2-D float tensor [V, D] of item embeddings")
    if c.dim() != 2:
        _fail("c", f"expected a 2-D tensor [V, D] of item embeddings, got shape {_shape(c)}")
    if c.dtype not in _FLOAT_DTYPES:
        _fail("c", f"dtype {c.dtype} is not float32, float16, bfloat16 or float64")
    v = c.shape[0]
    if c.shape[1] != d:
        _fail("c", f"shape {_shape(c)} does not match e's hidden size D = {d}")
    if v < 2:
        _fail("c", f"V = {v} items; CCE- needs at least 2")
    rows_of = "N" if positions is None else "M"
    _tensor("targets", targets, f"a 1-D integer tensor [{rows_of}] of item ids")
    if targets.dtype not in _INT_DTYPES:
        _fail("targets", f"dtype {targets.dtype} is not an integer type")
    if targets.dim() != 1 or (positions is None and targets.shape[0] != n):
        want = f"[N={n}]" if positions is None else "[M] (one per entry of positions)"
        _fail("targets", f"expected a 1-D integer tensor {want}, got shape {_shape(targets)}")
    if positions is not None:
        _positions_shape(positions, n, targets.shape[0])
        n = targets.shape[0]
    if not isinstance(reduction, str) or reduction not in ("mean", "sum", "none"):
        _fail("reduction", f"must be 'mean', 'sum' or 'none', got {reduction!r}")
    # The kernels take ignore_index as a 32-bit int.
    ignore_index = _int("ignore_index", ignore_index, "an int in [-2**31, 2**31)", -(2**31), 2**31 - 1)
    if share_rows is not None:
        share_rows = _int("share_rows", share_rows, "None or 16, 32, 64 or 128 rows")
        if share_rows not in _SHARES:
            _fail("share_rows", f"must be None or 16, 32, 64 or 128 rows, got {share_rows}")
    if not isinstance(deterministic, bool):
        _fail("deterministic", f"must be True or False, got {deterministic!r}")
    if dc_by_item is not None and not isinstance(dc_by_item, bool):
        _fail("dc_by_item", f"must be None, True or False, got {dc_by_item!r}")
    if dc_by_item and (share_rows or deterministic or reduction == "none"):
        why = f"share_rows={share_rows}" if share_rows else "deterministic=True" if deterministic else None
        why = why or "reduction='none'"
        _fail("dc_by_item", f"True is for per-row negatives, reduction mean or sum and float dC; not with {why}")
    rows = -(-n // share_rows) if share_rows else n
    in_batch = isinstance(negatives, str)
    if in_batch:
        k = _in_batch_mode(negatives, num_negatives, item_probs, seed, share_rows)
    elif in_batch_probs is not None:
        _fail("in_batch_probs", "is the q of the in-batch candidates; it needs negatives='in-batch' or "
              "'in-batch-group'")
    elif (negatives is None) == (num_negatives is None):
        _fail("negatives", "give exactly one of negatives (a tensor [N, K] of item ids) or num_negatives (K)")
    elif negatives is not None:
        want = f"[{rows_of}={n}, K]" if not share_rows else \
            f"[G={rows}, K] (one row of negatives per {share_rows} rows)"
        _tensor("negatives", negatives, f"an integer tensor {want}")
        if negatives.dtype not in _INT_DTYPES:
            _fail("negatives", f"dtype {negatives.dtype} is not an integer type")
        if negatives.dim() != 2 or negatives.shape[0] != rows:
            _fail("negatives", f"expected an integer tensor {want}, got shape {_shape(negatives)}")
        k = negatives.shape[1]
        if k < 1:
            _fail("negatives", "K = 0 negatives per row")
        if seed is not None:
            _fail("seed", "seeds the negatives drawn here (num_negatives); it has no use with negatives given")
    else:
        k = _int("num_negatives", num_negatives, "a positive int", 1)
    if seed is not None:
        # Philox4x32's 64-bit key; torch.Generator takes the same range.
        seed = _int("seed", seed, "None or an int in [0, 2**64)", 0, 2**64 - 1)
    for name, probs in (("item_probs", item_probs), ("in_batch_probs", in_batch_probs)):
        if probs is None:
            continue
        _tensor(name, probs, f"a 1-D float tensor [V={v}] of {'sampling' if name == 'item_probs' else 'item'} "
                "probabilities")
        if not probs.is_floating_point():
            _fail(name, f"dtype {probs.dtype} is not a floating type")
        if probs.dim() != 1 or probs.shape[0] != v:
            _fail(name, f"expected a 1-D tensor [V={v}], got shape {_shape(probs)}")
        if probs.device.type == "meta":
            _fail(name, "is a meta tensor (it holds no data)")
    # item_probs and in_batch_probs may live anywhere (read once, on e's device); the others share one device.
    on_device = [("e", e), ("c", c), ("targets", targets)]
    on_device += [("negatives", negatives)] if negatives is not None and not in_batch else []
    _one_device(on_device + ([("positions", positions)] if positions is not None else []))
    # Every 32-bit offset product of the kernels, before the negatives are drawn or anything else is allocated.
    tensor_neg = negatives is not None and not in_batch
    neg_name = "negatives" if tensor_neg else "num_negatives"
    products = (("e", "N·D", n_e * d), ("c", "V·D", v * d), (neg_name, "G·K" if share_rows else "N·K", rows * k))
    for name, what, size in products:
        if size > _MAX_OFFSET:
            _fail(name, f"{what} = {size} elements overflow 32-bit offsets (at most 2**31 - 1)")
    if item_probs is not None and not tensor_neg and v > _MAX_MULTINOMIAL:
        _fail("item_probs", f"drawing from V = {v} > 2**24 items is beyond torch.multinomial; pass negatives instead")
    # The values: one pass over each argument, no temporary larger than the argument.
    if e.device.type == "meta":
        _fail("e", "is a meta tensor (it holds no data)")
    # One summary on the device, read with one host transfer: whether a live target lies outside [0, V), the live
    # rows, the negatives' range, and max|e| (NaN or Inf where e holds one; over [N, D], never c). The details of
    # a bad value are looked up only then.
    live = targets != ignore_index
    bad = ((targets < 0) | (targets >= v)) & live
    parts = [bad.any(), live.sum()]
    if tensor_neg:
        parts += [negatives.min(), negatives.max()]
    if positions is not None:
        parts += [positions.min(), positions.max()]
    parts.append(e.detach().abs().amax())
    summary = torch.stack([x.to(device=e.device, dtype=torch.float64) for x in parts]).tolist()
    if summary[0]:
        i = _first(bad)[0]
        _fail("targets", f"targets[{i}] = {int(targets[i])} is outside [0, V={v}) and is not "
              f"ignore_index={ignore_index}")
    if tensor_neg and (summary[2] < 0 or summary[3] >= v):
        i, j = _first((negatives < 0) | (negatives >= v))
        _fail("negatives", f"negatives[{i}, {j}] = {int(negatives[i, j])} is outside [0, V={v})")
    if item_probs is not None:
        p = item_probs.detach().double()
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
            _fail("item_probs", "must be finite and non-negative")
        total = float(p.sum())
        if not total > 0 or not math.isfinite(total):
            _fail("item_probs", f"must have a positive finite sum, got {total}")
        zero = p == 0
        if tensor_neg and bool(zero.any()):
            hit = zero.to(negatives.device)[negatives.long()]
            if bool(hit.any()):
                i, j = _first(hit)
                _fail("negatives", f"negatives[{i}, {j}] = {int(negatives[i, j])} has item_probs 0 (log q = -inf)")
    if positions is not None:
        _positions_values(positions, summary[-3], summary[-2], n_e)
    if in_batch_probs is not None:
        _in_batch_probs_values(in_batch_probs, targets[live])
    # e only: a scan of c would read the whole item table every step.
    if not math.isfinite(summary[-1]):
        _fail("e", "contains NaN or Inf")
    return n, d, v, rows, k, ignore_index, share_rows, seed, int(summary[1])


_MODES = ("in-batch", "in-batch-group")


def _in_batch_mode(negatives, num_negatives, item_probs, seed, share_rows):
    """negatives='in-batch' / 'in-batch-group' (with num_negatives: mixed); returns K drawn per row (0: none)."""
    if negatives not in _MODES:
        _fail("negatives", f"a string must be 'in-batch' or 'in-batch-group', got {negatives!r}")
    if negatives == "in-batch-group" and share_rows is None:
        _fail("share_rows", "negatives='in-batch-group' needs share_rows=R (the group of R consecutive rows)")
    if num_negatives is not None:
        return _int("num_negatives", num_negatives, "a positive int", 1)
    if item_probs is not None:
        _fail("item_probs", f"is the q of drawn negatives; negatives={negatives!r} without num_negatives draws "
              "none (in_batch_probs is the q of the in-batch candidates)")
    if seed is not None:
        _fail("seed", f"seeds the negatives drawn here (num_negatives); negatives={negatives!r} draws none")
    if negatives == "in-batch" and share_rows is not None:
        _fail("share_rows", "shares drawn negatives; negatives='in-batch' without num_negatives draws none "
              "(negatives='in-batch-group' takes the targets of groups of share_rows rows)")
    return 0


def _positions_shape(positions, n_e, m):
    _tensor("positions", positions, f"a 1-D integer tensor [M] of row indices into e [N_E={n_e}, D]")
    if positions.dtype not in _INT_DTYPES:
        _fail("positions", f"dtype {positions.dtype} is not an integer type")
    if positions.dim() != 1:
        _fail("positions", f"expected a 1-D integer tensor [M], got shape {_shape(positions)}")
    if positions.shape[0] != m:
        _fail("positions", f"length M = {positions.shape[0]} does not match targets' length {m}")
    if m == 0:
        _fail("positions", "M = 0 rows")
    if positions.device.type == "meta":
        _fail("positions", "is a meta tensor (it holds no data)")


def _positions_values(positions, lo, hi, n_e):
    if lo < 0 or hi >= n_e:
        i = _first((positions < 0) | (positions >= n_e))[0]
        _fail("positions", f"positions[{i}] = {int(positions[i])} is outside [0, N_E={n_e}) (the rows of e)")
    if torch.unique(positions).shape[0] != positions.shape[0]:
        srt, order = torch.sort(positions)
        j = _first(srt[1:] == srt[:-1])[0]
        a, b = sorted((int(order[j]), int(order[j + 1])))
        _fail("positions", f"positions[{a}] = positions[{b}] = {int(srt[j])}; the rows must be distinct")


def _in_batch_probs_values(probs, live_targets):
    p = probs.detach().double()
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        _fail("in_batch_probs", "must be finite and non-negative")
    total = float(p.sum())
    if not total > 0 or not math.isfinite(total):
        _fail("in_batch_probs", f"must have a positive finite sum, got {total}")
    hit = (p == 0).to(live_targets.device)[live_targets.long()]
    if bool(hit.any()):
        item = int(live_targets[_first(hit)[0]])
        _fail("in_batch_probs", f"item {item} is an in-batch candidate (a target) but has probability 0 (log q = "
              "-inf)")
