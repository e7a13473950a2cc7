#!/usr/bin/env python3
"""PyTorch baselines for the ccekit benchmark: CE- (cross-entropy with K sampled negatives per row,
the paper's baseline formula) and, where it fits, full-catalog CE.

Usage (on the GPU machine):
    python3 bench/torch_baseline.py --out bench/results/torch-h100.json \
        [--settings beauty,ml20m,...] [--dtype fp16|bf16] [--repeats 20] [--warmup 3] [--full-ce] [--native] [--max-gib 60]
    python3 bench/torch_baseline.py --check      # tiny sizes on the CPU; checks the formula against a loop

Rows are written as a JSON list with the keys of BenchRow (bench/settings.ts). The file is rewritten after
each setting, so a run that is cut off still leaves the rows it finished.
"""

import argparse
import gc
import json
import math
import sys
import time

import torch
import torch.nn.functional as F

# Same numbers as SETTINGS in bench/settings.ts: name -> (N, V, K, D).
SETTINGS = {
    "beauty": (32768, 176450, 511, 256),
    "ml20m": (131072, 15405, 511, 256),
    "megamarket": (32768, 1661327, 255, 256),
    "zvuk": (131072, 893022, 2047, 256),
    "small-d": (65536, 100000, 511, 64),
}

DTYPES = {"fp16": (torch.float16, "f16"), "bf16": (torch.bfloat16, "bf16")}
SEED = 1234
MIB = 1024.0 * 1024.0
GIB = 1024.0 * MIB

_OOM = getattr(torch.cuda, "OutOfMemoryError", None)


def is_oom(exc):
    if _OOM is not None and isinstance(exc, _OOM):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc)


# ----------------------------------------------------------------------------------------------------------
# Inputs and losses


def make_inputs(N, V, K, D, dtype, device, seed, c_dtype=None, index_dtype=torch.int64, generator=None):
    """E [N, D] in `dtype`, C [V, D] in `c_dtype` (default `dtype`) with entries N(0, 1) * 2 / sqrt(D) (leaf
    tensors, requires_grad); targets [N] and negatives [N, K] of `index_dtype`, both uniform over [0, V)
    (negatives with replacement, so they collide with the target now and then, as in real sampling).
    `generator`: draw from it (seed is then not used)."""
    g = generator
    if g is None:
        g = torch.Generator(device=device)
        g.manual_seed(seed)
    scale = 2.0 / math.sqrt(D)
    E = (torch.randn(N, D, generator=g, device=device) * scale).to(dtype).requires_grad_(True)
    C = (torch.randn(V, D, generator=g, device=device) * scale).to(c_dtype or dtype).requires_grad_(True)
    targets = torch.randint(0, V, (N,), generator=g, device=device, dtype=index_dtype)
    negatives = torch.randint(0, V, (N, K), generator=g, device=device, dtype=index_dtype)
    return E, C, targets, negatives


def ce_minus_loss(E, C, targets, negatives, upcast=True):
    """CE- as the paper's PyTorch baseline computes it.

    Precision: no autocast. With upcast (impl 'torch-ce-minus', the default) E and the gathered rows of C
    are upcast explicitly with `.float()`, so the dot products, the logit correction and the softmax all
    run in float32; the gradients flow back through the casts into E and C in their storage dtype.
    Without upcast (impl 'torch-ce-minus-native', --native) the [N, K, D] gather and the bmm stay in the
    storage dtype (cuBLAS accumulates in float32) and only the [N, K] logits are upcast, which halves the
    big [N, K, D] tensors; the positive logit and everything after the bmm is float32 either way.

    For row i with k_i = K - #(negatives equal to the target) accepted negatives, every accepted negative
    logit gets + log(V - 1) - log(k_i) (the sampling correction of uniform negatives over the V - 1
    non-target items); negatives equal to the target are rejected (masked to -inf). A row with k_i = 0
    keeps only its positive logit (loss 0)."""
    N, K = negatives.shape
    V = C.shape[0]
    Ef = E.float()
    if upcast:
        C_neg = C[negatives].float()  # [N, K, D] gathered, then upcast to float32
        neg_logits = torch.bmm(C_neg, Ef[:, :, None]).squeeze(-1)  # [N, K] float32
    else:
        neg_logits = torch.bmm(C[negatives], E[:, :, None]).squeeze(-1).float()  # bmm in the storage dtype
    pos = (Ef * C[targets].float()).sum(-1)  # [N]
    hits = negatives == targets[:, None]  # [N, K] rejected slots
    k = (K - hits.sum(1, keepdim=True)).clamp_min(1).float()  # accepted negatives per row (>= 1 for the log)
    neg_logits = neg_logits + (math.log(V - 1) - torch.log(k))
    neg_logits = neg_logits.masked_fill(hits, float("-inf"))
    logits = torch.cat([pos[:, None], neg_logits], 1)  # the positive is class 0
    zeros = torch.zeros(N, dtype=torch.int64, device=E.device)
    return F.cross_entropy(logits, zeros)


def full_ce_loss(E, C, targets):
    """Full-catalog CE in float32 (explicit upcast, no autocast)."""
    logits = E.float() @ C.float().t()  # [N, V]
    return F.cross_entropy(logits, targets)


def ce_minus_loop(E, C, targets, negatives):
    """The same CE- loss, one row at a time in float64 (for --check)."""
    N, K = negatives.shape
    V = C.shape[0]
    E = E.double()
    C = C.double()
    total = E.new_zeros(())
    for i in range(N):
        t = int(targets[i])
        pos = (E[i] * C[t]).sum()
        accepted = [int(j) for j in negatives[i] if int(j) != t]
        terms = [pos]
        for j in accepted:
            terms.append((E[i] * C[j]).sum() + math.log(V - 1) - math.log(len(accepted)))
        total = total + torch.logsumexp(torch.stack(terms), 0) - pos
    return total / N


# ----------------------------------------------------------------------------------------------------------
# Memory estimates (bytes), used to skip settings that cannot fit


def estimate_ce_minus_bytes(N, V, K, D, elem):
    # gathered C[negatives] in the storage dtype, its float32 copy (saved by bmm) and its float32 gradient,
    # plus per-(row, negative) index, mask and logit tensors, plus E, C and their gradients with fp32 copies.
    return N * K * D * (elem + 4 + 4) + N * K * (8 + 1 + 4 * 4) + (N + V) * D * (2 * elem + 4)


def estimate_ce_minus_native_bytes(N, V, K, D, elem):
    # gathered C[negatives] and its gradient, both in the storage dtype, plus the same small terms.
    return N * K * D * (2 * elem) + N * K * (8 + 1 + 4 * 4) + (N + V) * D * (2 * elem + 4)


def estimate_full_ce_bytes(N, V, K, D, elem):
    # logits, softmax and its gradient, each [N, V] float32, plus the float32 copies of E and C and their gradients.
    return N * V * 4 * 3 + (N + V) * D * (2 * elem + 8)


# ----------------------------------------------------------------------------------------------------------
# Measurement


def percentile(sorted_vals, q):
    """Linear-interpolated percentile of an ascending list, q in [0, 100]."""
    if not sorted_vals:
        return float("nan")
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def measure(step, E, C, warmup, repeats):
    """Times `step` (forward returning the loss; backward is run here) with CUDA events around
    forward+backward. Each iteration starts from zeroed grads (E.grad = C.grad = None) and a synchronized
    device, so a number is one cold training step's loss part, launch gaps included. Peak extra memory is
    torch.cuda.max_memory_allocated() during the step minus what was allocated before it (grads included)."""
    for _ in range(warmup):
        E.grad = None
        C.grad = None
        loss = step()
        loss.backward()
        del loss
    torch.cuda.synchronize()
    totals, fwds, bwds, peaks = [], [], [], []
    for _ in range(repeats):
        E.grad = None
        C.grad = None
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        ev0 = torch.cuda.Event(enable_timing=True)
        ev1 = torch.cuda.Event(enable_timing=True)
        ev2 = torch.cuda.Event(enable_timing=True)
        ev0.record()
        loss = step()
        ev1.record()
        loss.backward()
        ev2.record()
        torch.cuda.synchronize()
        peaks.append(torch.cuda.max_memory_allocated() - before)
        totals.append(ev0.elapsed_time(ev2))
        fwds.append(ev0.elapsed_time(ev1))
        bwds.append(ev1.elapsed_time(ev2))
        del loss
    E.grad = None
    C.grad = None
    totals.sort()
    fwds.sort()
    bwds.sort()
    return {
        "ms": percentile(totals, 50),
        "p20": percentile(totals, 20),
        "p80": percentile(totals, 80),
        "fwd_ms": percentile(fwds, 50),
        "bwd_ms": percentile(bwds, 50),
        "peak_mib": max(peaks) / MIB,
    }


def free_cuda():
    gc.collect()
    torch.cuda.empty_cache()


def run_setting(name, impls, args, card):
    N, V, K, D = SETTINGS[name]
    dtype, dtype_name = DTYPES[args.dtype]
    elem = torch.tensor([], dtype=dtype).element_size()
    base = {"setting": name, "N": N, "V": V, "K": K, "D": D, "dtype": dtype_name, "card": card}
    rows = []
    # Which impls fit; skip the inputs entirely when none does.
    plans = []
    skipped = {}
    for impl in impls:
        est = ESTIMATES[impl](N, V, K, D, elem)
        if est > args.max_gib * GIB:
            skipped[impl] = dict(impl=impl, **base, ms=None, peak_mib=None, note="needs ~%.0f GiB" % (est / GIB))
        else:
            plans.append((impl, est))
    if not plans:
        return [order_row(skipped[i]) for i in impls]
    E = C = targets = negatives = None
    try:
        E, C, targets, negatives = make_inputs(N, V, K, D, dtype, "cuda", SEED)
        for impl, est in plans:
            if impl == "torch-ce-minus":
                step = lambda: ce_minus_loss(E, C, targets, negatives)  # noqa: E731
            elif impl == "torch-ce-minus-native":
                step = lambda: ce_minus_loss(E, C, targets, negatives, upcast=False)  # noqa: E731
            else:
                step = lambda: full_ce_loss(E, C, targets)  # noqa: E731
            row = dict(impl=impl, **base)
            try:
                row.update(measure(step, E, C, args.warmup, args.repeats))
            except Exception as exc:  # noqa: BLE001
                if not is_oom(exc):
                    raise
                row.update(ms=None, peak_mib=None, note="OOM")
            finally:
                step = None
                E.grad = None
                C.grad = None
                free_cuda()
            rows.append(order_row(row))
            print("  %-22s %-10s %s" % (impl, name, fmt_ms(row)), flush=True)
    except Exception as exc:  # noqa: BLE001  (OOM while making the inputs)
        if not is_oom(exc):
            raise
        done = {r["impl"] for r in rows}
        for impl, _ in plans:
            if impl not in done:
                rows.append(dict(impl=impl, **base, ms=None, peak_mib=None, note="OOM"))
    finally:
        E = C = targets = negatives = None
        free_cuda()
    # Rows in the order of impls, skipped ones included.
    by_impl = {r["impl"]: r for r in rows}
    by_impl.update({k: order_row(v) for k, v in skipped.items()})
    return [by_impl[i] for i in impls if i in by_impl]


ESTIMATES = {
    "torch-ce-minus": estimate_ce_minus_bytes,
    "torch-ce-minus-native": estimate_ce_minus_native_bytes,
    "torch-full-ce": estimate_full_ce_bytes,
}


KEY_ORDER = ["impl", "setting", "N", "V", "K", "D", "dtype", "ms", "p20", "p80", "fwd_ms", "bwd_ms", "peak_mib", "card", "note"]


def order_row(row):
    out = {}
    for k in KEY_ORDER:
        if k in row and (row[k] is not None or k in ("ms", "peak_mib")):
            v = row[k]
            out[k] = round(v, 4) if isinstance(v, float) else v
    out.setdefault("ms", None)
    out.setdefault("peak_mib", None)
    return out


def fmt_ms(row):
    if row.get("ms") is None:
        return "n/a (%s)" % row.get("note", "")
    return "%.2f ms (p20 %.2f, p80 %.2f), fwd %.2f, bwd %.2f, peak %.0f MiB" % (
        row["ms"], row["p20"], row["p80"], row["fwd_ms"], row["bwd_ms"], row["peak_mib"])


def print_table(rows):
    print()
    print("%-12s %-22s %-5s %12s %20s %12s  %s" % ("setting", "impl", "dtype", "ms", "p20-p80", "peak MiB", "note"))
    for r in rows:
        ms = "n/a" if r["ms"] is None else "%.2f" % r["ms"]
        spread = "" if r["ms"] is None else "%.2f-%.2f" % (r["p20"], r["p80"])
        mib = "n/a" if r["peak_mib"] is None else "%.0f" % r["peak_mib"]
        print("%-12s %-22s %-5s %12s %20s %12s  %s" % (r["setting"], r["impl"], r["dtype"], ms, spread, mib, r.get("note", "")))
    if rows:
        print("card: %s" % rows[0]["card"])


def write_rows(path, rows):
    with open(path, "w") as f:
        json.dump([order_row(r) for r in rows], f, indent=2, allow_nan=False)
        f.write("\n")


# ----------------------------------------------------------------------------------------------------------
# --check: tiny CPU run


def check():
    N, V, K, D = 7, 50, 5, 3
    torch.manual_seed(0)
    ok = True
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        E, C, targets, negatives = make_inputs(N, V, K, D, dtype, "cpu", SEED)
        # Force collisions: row 0 rejects every negative (only the positive remains), row 1 rejects one.
        negatives[0, :] = targets[0]
        negatives[1, 0] = targets[1]
        # Reference in float64 with autograd through the loop.
        E64 = E.detach().double().requires_grad_(True)
        C64 = C.detach().double().requires_grad_(True)
        ref = ce_minus_loop(E64, C64, targets, negatives)
        ref.backward()
        for upcast in (True, False):
            label = "%s%s" % (str(dtype).replace("torch.", ""), "" if upcast else " native")
            E.grad = None
            C.grad = None
            try:
                loss = ce_minus_loss(E, C, targets, negatives, upcast=upcast)
                loss.backward()
            except RuntimeError as exc:  # some CPU kernels of old torch lack 16-bit support
                if dtype == torch.float32:
                    raise
                print("check %s: skipped (%s)" % (label, str(exc).splitlines()[0]))
                continue
            gE, gC = E.grad.double(), C.grad.double()
            tol = 1e-5 if dtype == torch.float32 else 2e-2
            lv, rv = loss.item(), ref.item()
            dl = abs(lv - rv)
            dE = (gE - E64.grad).abs().max().item()
            dC = (gC - C64.grad).abs().max().item()
            good = math.isfinite(lv) and dl <= tol * max(1.0, abs(rv)) and dE <= tol and dC <= tol
            ok = ok and good
            print("check %s: loss %.6f (loop %.6f), |dloss| %.2e, max|dE| %.2e, max|dC| %.2e, grad norms E %.4f C %.4f: %s" % (
                label, lv, rv, dl, dE, dC, gE.norm().item(), gC.norm().item(), "ok" if good else "MISMATCH"))
    # Full CE runs too.
    E, C, targets, _ = make_inputs(N, V, K, D, torch.float32, "cpu", SEED)
    lf = full_ce_loss(E, C, targets)
    lf.backward()
    print("check full CE: loss %.6f" % lf.item())
    print("check %s" % ("ok" if ok else "FAILED"))
    return 0 if ok else 1


# ----------------------------------------------------------------------------------------------------------


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", help="JSON file to write the rows to")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names (default: all)")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--full-ce", action="store_true", help="also run full-catalog CE where it fits")
    p.add_argument("--native", action="store_true",
                   help="also run CE- with the gather and bmm in the storage dtype (impl torch-ce-minus-native)")
    p.add_argument("--max-gib", type=float, default=60.0, help="skip an impl whose memory estimate is above this")
    p.add_argument("--check", action="store_true", help="tiny CPU run that checks the formula; no GPU needed")
    args = p.parse_args(argv)

    if args.check:
        return check()
    if not args.out:
        p.error("--out is required (unless --check)")
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        p.error("unknown setting(s): %s (known: %s)" % (", ".join(unknown), ", ".join(SETTINGS)))
    if args.repeats < 1 or args.warmup < 0:
        p.error("--repeats must be >= 1 and --warmup >= 0")
    if not torch.cuda.is_available():
        print("torch_baseline: CUDA is not available", file=sys.stderr)
        return 2

    card = torch.cuda.get_device_name()
    print("torch %s on %s, dtype %s, %d warm-up + %d timed iterations" % (torch.__version__, card, args.dtype, args.warmup, args.repeats), flush=True)
    impls = ["torch-ce-minus"] + (["torch-ce-minus-native"] if args.native else []) + (["torch-full-ce"] if args.full_ce else [])
    rows = []
    t0 = time.time()
    for name in names:
        rows.extend(run_setting(name, impls, args, card))
        write_rows(args.out, rows)
    print_table(rows)
    print("wrote %d rows to %s in %.0f s" % (len(rows), args.out, time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
