"""Steps and measurement of bench/side_by_side.py: the package's cce_minus_loss and PyTorch CE- (the formula of
bench/torch_baseline.py) as forward + backward into E and C, timed with CUDA events (CPU: the wall clock),
their peak memory above the inputs, and a torch.profiler split of CUDA time into ccekit's kernels and the rest."""
import gc
import time

import torch

import torch_baseline
from torch_baseline import ce_minus_loop, ce_minus_loss, estimate_ce_minus_bytes, is_oom, percentile

MIB = float(1 << 20)
DTYPES = {"f16": torch.float16, "fp16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32,
          "fp32": torch.float32}
PATHS = ("per_row_tensor", "per_row_philox", "shared64")
SEED = 12345  # the in-kernel sampler's seed (per_row_philox, shared64)


def parse_dtypes(arg):
    """'f16,bf16,bf16:f32' -> [(label, E dtype, C dtype)]; 'E:C' is E in one dtype and the item table in another."""
    out = []
    for spec in [s.strip() for s in arg.split(",") if s.strip()]:
        parts = spec.split(":")
        if len(parts) > 2 or any(p not in DTYPES for p in parts):
            raise ValueError("--dtypes: %r is not f16, bf16, f32 or E:C of them" % spec)
        e, c = DTYPES[parts[0]], DTYPES[parts[-1]]
        label = short(e) if e == c else "%s:%s" % (short(e), short(c))
        out.append((label, e, c))
    if not out:
        raise ValueError("--dtypes: empty")
    return out


def short(dtype):
    return {torch.float16: "f16", torch.bfloat16: "bf16", torch.float32: "f32"}[dtype]


def elem(dtype):
    return torch.tensor([], dtype=dtype).element_size()


def make_inputs(s, e_dtype, c_dtype, device, gen):
    """E [N, D], C [V, D] (leaves needing grad, N(0, 1) * 2 / sqrt(D)), int32 targets [N] and negatives [N, K]
    uniform over [0, V); int32 because the package takes them as they are (int64 would be converted: a copy)."""
    return torch_baseline.make_inputs(s["N"], s["V"], s["K"], s["D"], e_dtype, device, None, c_dtype=c_dtype,
                                      index_dtype=torch.int32, generator=gen)


def package_forward(cce_minus_loss, path, e, c, t, neg, k):
    """The loss callable of a path: per_row_tensor (the [N, K] index tensor), per_row_philox (num_negatives=K,
    drawn in the kernel), shared64 (share_rows=64, drawn in the kernel)."""
    if path == "per_row_tensor":
        return lambda: cce_minus_loss(e, c, t, negatives=neg)
    if path == "per_row_philox":
        return lambda: cce_minus_loss(e, c, t, num_negatives=k, seed=SEED)
    return lambda: cce_minus_loss(e, c, t, num_negatives=k, seed=SEED, share_rows=64)


def _package_attr(name, module_hint=""):
    """The package's function `name` from whichever of its modules defines it (whose name holds module_hint):
    the helpers ask the package, not a copy of its rules. None where no module has it."""
    import importlib
    import pkgutil

    import ccekit_torch

    for m in pkgutil.iter_modules(ccekit_torch.__path__):
        if module_hint not in m.name:
            continue
        try:
            mod = importlib.import_module("ccekit_torch." + m.name)
        except ImportError:  # a module for a toolchain this machine lacks (Triton, say)
            continue
        if callable(getattr(mod, name, None)):
            return getattr(mod, name)
    return None


def hide_tiles():
    """Make the package's shared-negative path take its SIMT kernels (the Node runtime's) instead of Triton's
    tile kernels, as bench/gpu_common.py's package_cases does. Returns False where no tile module was found."""
    import importlib
    import pkgutil

    import ccekit_torch

    found = False
    for m in pkgutil.iter_modules(ccekit_torch.__path__):
        mod = importlib.import_module("ccekit_torch." + m.name) if "tile" in m.name else None
        if mod is not None and callable(getattr(mod, "available", None)):
            mod.available = lambda device, share, dtype=None: False
            found = True
    return found


def package_step_info(path, e, c):
    """Which step the package runs for this path (asked of the package itself where it runs on CUDA):
    {backend, by_item, step}. by_item is None where the package takes its CPU path or cannot say."""
    if not e.is_cuda:
        return {"backend": "cpu (PyTorch path)", "by_item": None, "step": "the package's CPU path"}
    if path == "shared64":
        tile_available = _package_attr("available", "tile")
        tiles = bool(tile_available and tile_available(e.device, 64, e.dtype))
        step = "Triton tile kernels (fused, shared 64)" if tiles else "SIMT fused shared-64 kernel"
        return {"backend": "triton" if tiles else "simt", "by_item": False, "step": step}
    default = _package_attr("dc_by_item_default")
    if default is None:
        return {"backend": "simt", "by_item": None, "step": "unknown (the package has no dc_by_item_default)"}
    by_item = bool(default(c, None, False))
    step = "fused fwd+dE, dC by item" if by_item else "fused kernel, dC by float atomics"
    return {"backend": "simt", "by_item": by_item, "step": step}


def ce_minus_plan(s, e, c, t, neg):
    """(forward callable, None) of PyTorch CE- on the same inputs (int64 index copies, made here and counted
    as its inputs), or (None, why) where its estimate does not fit in the free device memory."""
    n, v, k, d = s["N"], s["V"], s["K"], s["D"]
    if e.is_cuda:
        need = estimate_ce_minus_bytes(n, v, k, d, elem(e.dtype))
        free = torch.cuda.mem_get_info(e.device)[0]
        if need > 0.95 * free:
            return None, "needs ~%.0f GiB (free %.0f GiB)" % (need / 2**30, free / 2**30)
    t64, neg64 = t.long(), neg.long()
    return (lambda: ce_minus_loss(e, c, t64, neg64)), None


def grads_bytes(e, c):
    """Bytes of the returned gradients: dE [N, D] and dC [V, D] in the inputs' own dtypes."""
    return e.numel() * e.element_size() + c.numel() * c.element_size()


def _summary(totals, fwds, bwds):
    for xs in (totals, fwds, bwds):
        xs.sort()
    return {"ms": percentile(totals, 50), "p20": percentile(totals, 20), "p80": percentile(totals, 80),
            "fwd_ms": percentile(fwds, 50), "bwd_ms": percentile(bwds, 50)}


def measure(forward, e, c, warmup, repeats):
    """forward() -> loss, then torch.autograd.grad(loss, (e, c)), timed: median / p20 / p80 over `repeats` steps
    after `warmup`. CUDA: events around each pass, the peak allocated above what was allocated before the step
    (the inputs), gradients included; CPU: perf_counter, no memory figure. Also the last step's loss."""
    def step():
        loss = forward()
        return loss, torch.autograd.grad(loss, (e, c))

    for _ in range(warmup):
        step()
    cuda = e.is_cuda
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
    totals, fwds, bwds, peak, loss_value = [], [], [], 0, None
    for _ in range(repeats):
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            ev = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
            ev[0].record()
            loss = forward()
            ev[1].record()
            g = torch.autograd.grad(loss, (e, c))
            ev[2].record()
            torch.cuda.synchronize()
            peak = max(peak, torch.cuda.max_memory_allocated() - base)
            t01, t12 = ev[0].elapsed_time(ev[1]), ev[1].elapsed_time(ev[2])
        else:
            a = time.perf_counter()
            loss = forward()
            b = time.perf_counter()
            g = torch.autograd.grad(loss, (e, c))
            t01, t12 = (b - a) * 1e3, (time.perf_counter() - b) * 1e3
        totals.append(t01 + t12)
        fwds.append(t01)
        bwds.append(t12)
        loss_value = float(loss.detach().float())
        del loss, g
    out = _summary(totals, fwds, bwds)
    out["peak_mib"] = peak / MIB if cuda else None
    out["loss"] = loss_value
    return out


def _kernel_us(evt):
    kind = getattr(evt.device_type, "name", str(evt.device_type))
    if not kind.endswith("CUDA"):
        return None
    return evt.time_range.elapsed_us()


def profile(forward, e, c, steps=3):
    """CUDA time per step (ms) of ccekit's kernels (names starting cce_minus: the emitted SIMT and Triton
    entries) and of everything else on the device (PyTorch's kernels, memsets, copies), with the five largest
    others by name."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for _ in range(2):
        torch.autograd.grad(forward(), (e, c))
    torch.cuda.synchronize()
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            torch.autograd.grad(forward(), (e, c))
        torch.cuda.synchronize()
    ours, others = 0.0, {}
    for evt in prof.events():
        us = _kernel_us(evt)
        if us is None:
            continue
        if evt.name.startswith("cce_minus"):
            ours += us
        else:
            others[evt.name] = others.get(evt.name, 0.0) + us
    top = sorted(others.items(), key=lambda kv: -kv[1])[:5]
    return {"ccekit_kernels_ms": ours / 1e3 / steps, "other_ms": sum(others.values()) / 1e3 / steps,
            "top_other": [{"name": k[:120], "ms": v / 1e3 / steps} for k, v in top]}


def rel(a, b):
    """max|a - b| / max|b| in float64."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def check_f64(forward, e, c, t, neg):
    """The package's loss, dE and dC (per_row_tensor) against the float64 loop of bench/torch_baseline.py on the
    same inputs: relative max errors. Small problems only (the loop runs row by row)."""
    loss = forward()
    de, dc = torch.autograd.grad(loss, (e, c))
    e64 = e.detach().double().requires_grad_(True)
    c64 = c.detach().double().requires_grad_(True)
    ref = ce_minus_loop(e64, c64, t.long(), neg.long())
    re, rc = torch.autograd.grad(ref, (e64, c64))
    return {"loss": rel(loss.detach().reshape(1), ref.detach().reshape(1)), "dE": rel(de, re), "dC": rel(dc, rc)}


def free(device):
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()

