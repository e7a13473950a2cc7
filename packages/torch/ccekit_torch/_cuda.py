"""The package's kernels on CUDA: manifest.json's kernels and step table, the choice of a kernel for a call, and the
host side of the steps that run one kernel per autograd pass (the tile kernels of _tile and the chunk plan of
_byitem use the same buffers and scalars)."""
import functools
import json
import math
import os

import torch

from ._driver import CcekitCudaError, available, launch, serves  # noqa: F401 (available: loss.py asks _cuda)

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "manifest.json")) as f:
    _MANIFEST = json.load(f)
_TUNING = {}
if os.path.exists(os.path.join(_HERE, "tuning.json")):
    with open(os.path.join(_HERE, "tuning.json")) as f:
        _TUNING = json.load(f).get("entries", {})

_NAMES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}


def counters():
    """Kernels of dC by item that hold no embeddings: one schedule for every D."""
    return _MANIFEST["byItem"]["counters"]


def step_for(reduction, needs, by_item=False):
    """The first entry of manifest.json's "steps" that this call meets. needs: the gradients autograd asks for,
    'dc' (the item table's, with or without the hidden states'), 'de' (only the hidden states') or 'none'."""
    for s in _MANIFEST["steps"]:
        if reduction in s["reductions"] and needs in s["needs"] and (by_item or not s.get("byItem", False)):
            return s
    raise CcekitCudaError(f"the package has no step for reduction={reduction!r}, gradients {needs}")


def _reads_negatives(kernel):
    return any(p["kind"] == "tensor" and p["name"] == "negatives" for p in kernel["parameters"])


@functools.lru_cache(maxsize=4)
def reads_int64(tiles=False):
    """Whether the package's kernels (and its tile kernels, with tiles) read an int64 negatives tensor as it is:
    the variants with options.negativesDtype 'i64', emitted for every kernel that reads the index tensor."""
    def has(ks):
        return any(k["options"].get("negativesDtype") == "i64" for k in ks)
    return has(_MANIFEST["kernels"]) and (not tiles or has(_MANIFEST.get("tiles", [])))


def _kind(negatives):
    """'philox' for (K, seed), 'none' without drawn negatives (in-batch candidates only), else 'tensor'."""
    return "philox" if isinstance(negatives, tuple) else "none" if negatives is None else "tensor"


def source_of(in_batch=None, q_batch="uniform", positions=False, vocab=False):
    """The candidate-source key of a call (None: drawn negatives only, every row of e a loss row): in-batch
    candidates ('batch' / 'group') with their q ('uniform' / 'given'), whether loss rows read positions, and
    whether c is a shard of a vocabulary-parallel table."""
    if not in_batch and not positions and not vocab:
        return None
    return (in_batch or None, q_batch if in_batch else None, bool(positions), bool(vocab))


def _ndt(negatives):
    return "i64" if isinstance(negatives, torch.Tensor) and negatives.dtype == torch.int64 else "i32"


def _source_key(o):
    return source_of(o.get("inBatch"), o.get("inBatchSampling", "uniform"), o.get("positions", False),
                     o.get("vocabShard", False))


def matches(k, pass_, name, sampling, negatives, share, det, packed=False, ndt="i32", src=None):
    """Whether kernel (or tile) k is this pass for these options. ndt 'i64': an int64 negatives tensor, read by
    the i64 variants; a kernel that does not read the negatives serves either. src: source_of's key."""
    o = k["options"]
    if ndt == "i64" and not _reads_negatives(k):
        ndt = o.get("negativesDtype", "i32")
    return (k["pass"] == pass_ and o["dtype"] == name and o["sampling"] == sampling
            and o.get("negatives", "tensor") == negatives and o.get("share") == share
            and o.get("deterministic", False) == det and o.get("packed", False) == packed
            and o.get("negativesDtype", "i32") == ndt and _source_key(o) == src)


def _candidates(pass_, name, sampling, negatives, share, det, packed, ndt="i32", src=None):
    return [k for k in _MANIFEST["kernels"]
            if matches(k, pass_, name, sampling, negatives, share, det, packed, ndt, src)]


def _served(kernels):
    """The hidden sizes a set of kernels serves: per vector width, D up to the largest BLOCK_D, {vec: bound};
    a width whose bound a narrower width reaches adds nothing and is left out."""
    top = {}
    for k in kernels:
        s = k["schedule"]
        top[s["vec"]] = max(top.get(s["vec"], 0), s["lanes"] * s["vec"] * s["dChunks"])
    out = {}
    for vec, bound in sorted(top.items()):
        if all(bound > b for b in out.values()):
            out[vec] = bound
    return out


def _needed(share, det, by_item, src=None):
    """(pass, deterministic dC, packed) of every kernel at a sweep schedule that a call may run: the passes of
    the steps it can take (by item only when asked; with share, the steps that run shared negatives)."""
    out = []
    for s in _MANIFEST["steps"]:
        if (s.get("byItem", False) and not by_item) or ((share or (src and src[0])) and not s["shared"]):
            continue
        for p in s["forward"] + s["backward"]:
            if p in counters():
                continue
            for packed in (False, True) if p in s["packed"] else (False,):
                out.append((p, det and p in s["deterministic"], packed))
    return out


def supports_sources(*, dtype, d, in_batch, drawn, philox, item_probs, in_batch_probs, positions, share_rows,
                     deterministic, given=False):
    """Whether this package's kernels compute a call of the candidate sources (loss.py asks before anything is
    drawn): whether the manifest carries kernels for its parts (in-batch, drawn, positions), by their options. A
    hidden size D the kernels do not serve is a ValueError (check_supported); a combination without kernels
    answers False and takes the PyTorch path."""
    if deterministic:
        return False
    part = {"in-batch": "batch", "in-batch-group": "group"}.get(in_batch)
    src = source_of(part, "given" if in_batch_probs else "uniform", positions)
    negatives = "philox" if philox else "tensor" if (drawn or given) else "none"
    sampling = "given" if item_probs else "uniform"
    share = share_rows if (drawn or given or part == "group") else None
    if not _has_source_kernels(dtype, sampling, negatives, share, src):
        return False
    tiles = False
    if part:
        from . import _tile

        tiles = _tile.available_sources(torch.device("cuda"), dtype, src)
    check_supported(dtype, d, sampling, negatives, share, False, False, tiles, src)
    return True


def _has_source_kernels(dtype, sampling, negatives, share, src):
    """Whether the package carries kernels for this candidate source (source_of's key) at all."""
    name = _NAMES[dtype]
    return any(matches(k, k["pass"], name, sampling, negatives, share, False, False, "i32", src)
               for k in _MANIFEST["kernels"] + _MANIFEST.get("tiles", []))


@functools.lru_cache(maxsize=512)
def check_supported(dtype, d, sampling, negatives="tensor", share=None, det=False, by_item=False, tiles=False,
                    src=None):
    """ValueError naming the argument when this package cannot compute the call on CUDA, before anything is
    drawn, allocated or launched: share_rows without kernels, a dtype not emitted, or a hidden size D that no
    emitted schedule serves for one of the passes the call may run. dtype: the kernels' (the item table's).
    tiles: the Triton tile kernels (any D) run the shared negatives (and the in-batch candidates)."""
    name = _NAMES[dtype]
    if src is not None and not _has_source_kernels(dtype, sampling, negatives, share, src):
        raise ValueError(f"negatives: this package has no {name} kernels for candidates {src} with {negatives} "
                         f"draws{f' shared by {share} rows' if share else ''}; re-emit it with this ccekit")
    if src is not None and src[0] and tiles:
        return
    if share:
        shares = sorted({k["options"]["share"] for k in _MANIFEST["kernels"] if k["options"].get("share")})
        if share not in shares:
            listed = ", ".join(map(str, shares)) or "none"
            raise ValueError(f"share_rows: this package's CUDA kernels serve share_rows {listed}, not {share}")
        if tiles:
            return
    dtypes = sorted({k["options"]["dtype"] for k in _MANIFEST["kernels"] if k["pass"] == "forward"})
    if name not in dtypes:
        raise ValueError(f"e: dtype {dtype} has no kernels in this package (emitted for {', '.join(dtypes)}); "
                         f"re-emit with --dtype {name} or all")
    for pass_, kdet, packed in _needed(share, det, by_item, src):
        kernels = _candidates(pass_, name, sampling, negatives, share, kdet, packed, "i32", src)
        if any(serves(k, d) for k in kernels):
            continue
        served = _served(kernels)
        what = f"{name} {pass_} kernels" + (f" for share_rows={share}" if share else "")
        words = ", ".join(f"D <= {b}" + (f" with D % {vec} == 0" if vec > 1 else "") for vec, b in served.items())
        emitted = ", ".join(map(str, _MANIFEST.get("dValues", []))) or "?"
        if any(b >= d for b in served.values()):
            # Long enough but no vector width divides D: re-emitting for this D would give the same schedules.
            vec = min(vec for vec, b in served.items() if b >= d)
            fix = f"pad e and c with zero columns to a multiple of {vec} (the loss is unchanged)"
            fix += " or use share_rows=None" if share else ""
        else:
            fix = f"re-emit the package with --d-values including {d}"
        raise ValueError(f"e: hidden size D = {d} is not served by this package's {what} ({words or 'none'}; "
                         f"emitted for D = {emitted}); {fix}")


def pick(pass_, e, negatives, logq, share=None, det=False, packed=False, src=None):
    """The kernel of this pass for the call: a tuned schedule for the device if the package has one, else the
    smallest fit. A pass of dC by item without embeddings (counters()) has one kernel per kind of negatives.
    Remembered per kind of call (the manifest is scanned once for each)."""
    sampling = "uniform" if logq is None else "given"
    return _pick(pass_, e.dtype, e.shape[1], e.device, _kind(negatives), _ndt(negatives), sampling, share, det, packed,
                 src)


@functools.lru_cache(maxsize=1024)
def _pick(pass_, dtype, d, device, kind, ndt, sampling, share, det, packed, src=None):
    if pass_ in counters():
        scan = pass_.startswith("scan")
        for k in _MANIFEST["kernels"]:
            o = k["options"]
            if k["pass"] == pass_ and (scan or matches(k, pass_, o["dtype"], sampling, kind, None, False, packed, ndt)):
                return k
        raise CcekitCudaError(f"the package has no {pass_} kernel; re-emit it with this ccekit")
    name = _NAMES[dtype]
    cands = [k for k in _candidates(pass_, name, sampling, kind, share, det, packed, ndt, src) if serves(k, d)]
    if not cands:
        # check_supported refuses such a call with a ValueError first.
        raise CcekitCudaError(f"no emitted {pass_} kernel for D={d} {name} {sampling} {kind} ({ndt}) negatives"
                              f"{f' shared by {share} rows' if share else ''}; re-emit with --d-values covering {d}")
    dev = torch.cuda.get_device_name(device)
    tuned = {json.dumps(t["schedule"], sort_keys=True) for t in _TUNING.values()
             if t["key"]["device"]["name"] == dev and t["key"]["dtype"] == name}
    cands.sort(key=lambda k: (json.dumps(k["schedule"], sort_keys=True) not in tuned, k["launch"]["blockD"],
                              -k["schedule"]["vec"]))
    return cands[0]


def scalars(e, c, negatives, ignore_index, share=None, grad_scale=1.0, dc_scale=1.0, rows=None):
    """negatives: an index tensor [N, K] ([G, K] when shared by groups of rows; int32, or int64 read as it is),
    (K, seed) for the in-kernel Philox sampler, or None (in-batch candidates only). rows: the loss rows N when
    they read positions of e (e then has NE rows)."""
    ne, d = e.shape
    n = ne if rows is None else rows
    v = c.shape[0]
    out = {"N": n, "NE": ne, "D": d, "V": v, "V2": 2 * v, "G": -(-n // share) if share else n,
           "ignore_index": ignore_index, "logq_uniform": -math.log(v - 1), "logq_batch_uniform": -math.log(v - 1),
           "grad_scale": grad_scale, "dC_scale": dc_scale}
    if negatives is None:
        out.update(K=0, K2=0)
    elif isinstance(negatives, tuple):
        out.update(K=negatives[0], seed_lo=negatives[1] & 0xFFFFFFFF, seed_hi=(negatives[1] >> 32) & 0xFFFFFFFF)
    else:
        # K2: the int32 words of a row of an int64 negatives tensor (the i64 kernels' view of it).
        out.update(K=negatives.shape[1], K2=2 * negatives.shape[1])
    return out


def inputs(e, c, targets, negatives, logq, extra=None):
    """The input tensors by parameter name. An int64 negatives tensor goes as its int32 words ([rows, 2K], no
    copy): the i64 kernels read the low word of each. extra: the sources' tensors (positions, logq_batch)."""
    neg = None if isinstance(negatives, tuple) else negatives
    if neg is not None and neg.dtype == torch.int64:
        neg = neg.view(torch.int32)
    return {"E": e, "C": c, "targets": targets, "negatives": neg, "logq": logq, **(extra or {})}


def dc_buffer(c, det):
    """The dC accumulator (one zero fill of [V, D]): fp32 for float atomics, int64 fixed point for the
    deterministic kernels."""
    return torch.zeros(c.shape, dtype=torch.int64 if det else torch.float32, device=c.device)


def dc_scale(e, g_abs_sum):
    """Fixed-point scale (a power of two) of the deterministic dC, as ccekit's runtime/fixed.ts picks it:
    |dC| <= 2 * sum|g| * max|E| maps to 2^62, so the int64 sums cannot overflow. g_abs_sum: a number or a
    device scalar (one host sync for both reductions). max|E| is over e [N, D]."""
    bound = 2.0 * float((e.detach().abs().max().float() * g_abs_sum).item())
    if not (bound > 0) or not math.isfinite(bound):
        return 1.0
    return 2.0 ** max(-126, min(127, 62 - math.ceil(math.log2(bound))))


def grad_result(acc, scale, g, dtype):
    """The returned gradient from a kernel's accumulator (fp32, or int64 fixed point in units of 1/scale) times
    the upstream factor g, in at most one elementwise pass: none when acc is already the gradient (fp32, factor
    1: the accumulator is returned as it is), else one in-place multiply, one conversion, or one multiply into a
    tensor of the returned dtype. g: a number, or a device tensor (a multiply into the returned dtype)."""
    f = g / scale
    if isinstance(f, torch.Tensor):
        # A device factor (no host sync): one pass into a tensor of the returned dtype.
        return torch.mul(acc, f, out=torch.empty(acc.shape, dtype=dtype, device=acc.device))
    if acc.dtype == dtype:
        return acc if f == 1.0 else acc.mul_(f)
    if f == 1.0:
        return acc.to(dtype)
    return torch.mul(acc, f, out=torch.empty(acc.shape, dtype=dtype, device=acc.device))


def _launch_simt(pass_, e, negatives, logq, share, det, tensors, sc, src=None):
    launch(pick(pass_, e, negatives, logq, share, det, src=src), e.device, sc["N"], tensors, sc)


def _de_buffer(e, src):
    """dE [NE, D] fp32: every row written, or zeros when loss rows read positions (rows without a loss)."""
    make = torch.zeros if src and src[2] else torch.empty
    return make(e.shape, dtype=torch.float32, device=e.device)


def one(step, e, c, targets, negatives, logq, ignore_index, share=None, det=False, grad_scale=1.0, g_abs_sum=0.0,
        run=_launch_simt, src=None, extra=None):
    """A step of one launch (host 'one'): loss rows and the step's outputs (dE, dC) for the upstream scale
    grad_scale. Returns loss, dE (fp32 [N, D] or None), the dC accumulator (or None) and its fixed-point scale.
    g_abs_sum: sum of |g| over the rows (the deterministic dC's bound). src, extra: the candidate source's key
    (source_of) and tensors (positions, logq_batch)."""
    n = targets.shape[0]
    pass_ = step["forward"][0]
    kdet = det and pass_ in step["deterministic"]
    out = {"loss": torch.empty(n, dtype=torch.float32, device=e.device)}
    if "dE" in step["outputs"]:
        out["dE"] = _de_buffer(e, src)
    if "dC" in step["outputs"]:
        out["dC"] = dc_buffer(c, kdet)
    scale = dc_scale(e, g_abs_sum) if kdet and "dC" in out else 1.0
    sc = scalars(e, c, negatives, ignore_index, share, grad_scale, scale, rows=n)
    tensors = dict(inputs(e, c, targets, negatives, logq, extra), **out)
    run(pass_, e, negatives, logq, share, kdet, tensors, sc, src=src)
    return out["loss"], out.get("dE"), out.get("dC"), scale


def forward(step, e, c, targets, negatives, logq, ignore_index, share=None, run=_launch_simt, src=None, extra=None):
    """The forward of a split step: loss rows, lse and the accepted count per row."""
    n = targets.shape[0]
    f32 = dict(dtype=torch.float32, device=e.device)
    out = {"loss": torch.empty(n, **f32), "lse": torch.empty(n, **f32),
           "kacc": torch.empty(n, dtype=torch.int32, device=e.device)}
    sc = scalars(e, c, negatives, ignore_index, share, rows=n)
    tensors = dict(inputs(e, c, targets, negatives, logq, extra), **out)
    run(step["forward"][0], e, negatives, logq, share, False, tensors, sc, src=src)
    return out["loss"], out["lse"], out["kacc"]


def backward(step, e, c, targets, negatives, logq, lse, kacc, dloss, ignore_index, share=None, det=False,
             run=_launch_simt, src=None, extra=None):
    """The backward of a split step for a per-row upstream gradient dloss: dE (fp32), the dC accumulator and
    its fixed-point scale."""
    n = targets.shape[0]
    pass_ = step["backward"][0]
    kdet = det and pass_ in step["deterministic"]
    out = {"lse": lse, "kacc": kacc, "dloss": dloss, "dE": _de_buffer(e, src), "dC": dc_buffer(c, kdet)}
    scale = dc_scale(e, dloss.abs().sum()) if kdet else 1.0
    sc = scalars(e, c, negatives, ignore_index, share, 1.0, scale, rows=n)
    tensors = dict(inputs(e, c, targets, negatives, logq, extra), **out)
    run(pass_, e, negatives, logq, share, kdet, tensors, sc, src=src)
    return out["dE"], out["dC"], scale


def dc_by_item_default(c, share=None, det=False):
    """Reduce dC by item when it pays: per-row negatives, float dC, and rows of at least 128 elements or an item
    gradient larger than the GPU's L2 cache (its float atomics then miss L2). On an H100 by item was faster at
    beauty, ml20m, megamarket and zvuk (D = 256) and slower at small-d (D = 64, dC in L2), in
    bench/results/h100-by-item.md."""
    if share or det:
        return False
    l2 = getattr(torch.cuda.get_device_properties(c.device), "L2_cache_size", 50 << 20)
    return c.shape[1] >= 128 or c.shape[0] * c.shape[1] * 4 > l2
