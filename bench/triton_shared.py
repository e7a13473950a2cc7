"""Row-tile-shared negatives on tensor cores: ccekit's emitted Triton tile kernels (tl.dot), checked against the
float64 PyTorch reference and timed at the paper's settings on the GPU machine.

  python3 bench/triton_shared.py OUT_JSON PKG DIR [DIR ...]

PKG: the emitted torch package (its float64 reference and host twin of the Philox sampler). Each DIR: one
`ccekit emit --target triton --variants shared --share R --samples-per-step C` folder (rows per group R and
candidate tile C are fixed at emission; warps and pipeline stages are launch options, searched here).
Per DIR: correctness at odd sizes (fused mean with in-kernel draws; forward + backward with a per-row upstream
gradient and an index tensor), then every setting × dtype × (warps, stages); the fastest configuration per
setting and dtype is the tuned row. A step is dC zeroed + the fused kernel (loss, dE, dC), CUDA events,
median of 20 after 3 warm-up steps.
"""
import importlib.util
import json
import math
import os
import sys

import torch
import triton

out_json, pkg, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
sys.path.insert(0, pkg)
from ccekit_torch import _reference, reference_cce_minus_loss  # noqa: E402

dev = torch.device("cuda")
card = torch.cuda.get_device_name()
SETTINGS = [("beauty", 32768, 176450, 511, 256), ("ml20m", 131072, 15405, 511, 256), ("megamarket", 32768, 1661327, 255, 256),
            ("zvuk", 131072, 893022, 2047, 256), ("small-d", 65536, 100000, 511, 64)]
only = os.environ.get("SETTINGS")
if only:
    SETTINGS = [s for s in SETTINGS if s[0] in only.split(",")]
TORCH_DT = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}


def load(d, file):
    spec = importlib.util.spec_from_file_location(file[:-3], os.path.join(d, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def kernels(d):
    man = json.load(open(os.path.join(d, "manifest.json")))
    out = {}
    for k in man["kernels"]:
        o = k["options"]
        out[(k["pass"], o["sampling"], o["negatives"], o["dtype"], o["grad"])] = (k, getattr(load(d, k["file"]), k["entry"]))
    return out


def launch(entry, k, n, args, bd, warps, stages):
    s = k["schedule"]
    names = [p["name"] for p in k["parameters"]]
    entry[(triton.cdiv(n, s["rows"]),)](**{x: args[x] for x in names}, BLOCK_R=s["rows"], BLOCK_D=bd, BLOCK_C=s["samplesPerStep"], num_warps=warps, num_stages=stages)


def shared_rows(neg_groups, r, n):
    return neg_groups.repeat_interleave(r, dim=0)[:n]


def check(d, ks):
    """Odd sizes against the float64 reference on the same negatives (written out per row)."""
    fails = []
    k0 = next(iter(ks.values()))[0]
    r = k0["schedule"]["rows"]
    torch.manual_seed(5)
    for dtype in ("f16", "bf16", "f32"):
        n, dd, v, kk = 3 * r + 17, 80, 1009, 77
        bd = triton.next_power_of_2(dd)
        e = (torch.randn(n, dd, device=dev) * 0.3).to(TORCH_DT[dtype])
        c = (torch.randn(v, dd, device=dev) * 0.3).to(TORCH_DT[dtype])
        t = torch.randint(0, v, (n,), device=dev, dtype=torch.int32)
        t[::9] = -100
        live = int((t != -100).sum())
        g = triton.cdiv(n, r)
        seed = 2**35 + 7
        drawn = _reference.philox_uniform(g, kk, v, seed, dev, stream=1).to(torch.int32)
        given = torch.randint(0, v, (g, kk), device=dev, dtype=torch.int32)
        given[0, :5] = t[0].clamp_min(0)  # collisions with a row's target
        base = dict(E=e, C=c, targets=t, ignore_index=-100, N=n, D=dd, V=v, K=kk, G=g, logq_uniform=-math.log(v - 1), seed_lo=seed & 0xFFFFFFFF, seed_hi=seed >> 32)
        e64, c64 = e.double().requires_grad_(), c.double().requires_grad_()
        tol = 1e-4 if dtype == "f32" else 2e-3
        # fused, mean, drawn in the kernel
        kf, ef = ks[("fused", "uniform", "philox", dtype, "scalar")]
        loss = torch.full((n,), float("nan"), device=dev)
        de = torch.full((n, dd), float("nan"), device=dev)
        dc = torch.zeros(v, dd, device=dev)
        launch(ef, kf, n, dict(base, loss=loss, dE=de, dC=dc, grad_scale=1.0 / live), bd, 4, 2)
        ref = reference_cce_minus_loss(e64, c64, t.long(), shared_rows(drawn, r, n).long(), None, -100, "mean")
        ref.backward()
        errs = [float((loss.double().sum() / live - ref).abs() / ref.abs()), float((de.double() - e64.grad).abs().max() / e64.grad.abs().max()), float((dc.double() - c64.grad).abs().max() / c64.grad.abs().max())]
        ok = all(x < tol for x in errs)
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(d)} fused philox {dtype}: loss {errs[0]:.1e} dE {errs[1]:.1e} dC {errs[2]:.1e}", flush=True)
        if not ok:
            fails.append(f"fused {dtype}")
        # forward + backward, per-row upstream gradient, index tensor
        e64.grad = None
        c64.grad = None
        (kfw, efw), (kbw, ebw) = ks[("forward", "uniform", "tensor", dtype, "scalar")], ks[("backward", "uniform", "tensor", dtype, "perRow")]
        lse = torch.full((n,), float("nan"), device=dev)
        kacc = torch.full((n,), -1, device=dev, dtype=torch.int32)
        dloss = torch.rand(n, device=dev) + 0.5
        de.fill_(float("nan"))
        dc.zero_()
        args = dict(base, negatives=given, loss=loss, lse=lse, kacc=kacc, dloss=dloss, dE=de, dC=dc, grad_scale=1.0)
        launch(efw, kfw, n, args, bd, 4, 2)
        launch(ebw, kbw, n, args, bd, 4, 2)
        ref = reference_cce_minus_loss(e64, c64, t.long(), shared_rows(given, r, n).long(), None, -100, "none")
        (ref * dloss.double()).sum().backward()
        errs = [float((loss.double() - ref).abs().max() / ref.abs().max()), float((de.double() - e64.grad).abs().max() / e64.grad.abs().max()), float((dc.double() - c64.grad).abs().max() / c64.grad.abs().max())]
        ok = all(x < tol for x in errs)
        print(f"{'ok  ' if ok else 'FAIL'} {os.path.basename(d)} fwd+bwd per-row grad, index tensor {dtype}: loss {errs[0]:.1e} dE {errs[1]:.1e} dC {errs[2]:.1e}", flush=True)
        if not ok:
            fails.append(f"fwd+bwd {dtype}")
    return fails


def time_setting(ks, dtype, st, warps, stages, reps=20, warm=3):
    name, n, v, kk, dd = st
    kf, ef = ks[("fused", "uniform", "philox", dtype, "scalar")]
    r = kf["schedule"]["rows"]
    torch.manual_seed(1)
    sc = 2 / math.sqrt(dd)
    e = (torch.randn(n, dd, device=dev) * sc).to(TORCH_DT[dtype])
    c = (torch.randn(v, dd, device=dev) * sc).to(TORCH_DT[dtype])
    t = torch.randint(0, v, (n,), device=dev, dtype=torch.int32)
    de = torch.empty(n, dd, device=dev)
    dc = torch.empty(v, dd, device=dev)
    loss = torch.empty(n, device=dev)
    args = dict(E=e, C=c, targets=t, ignore_index=-100, N=n, D=dd, V=v, K=kk, logq_uniform=-math.log(v - 1), seed_lo=12345, seed_hi=0, loss=loss, dE=de, dC=dc, grad_scale=1.0 / n)
    bd = triton.next_power_of_2(dd)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ts = []
    for i in range(warm + reps):
        ev[0].record()
        dc.zero_()
        launch(ef, kf, n, args, bd, warps, stages)
        ev[1].record()
        torch.cuda.synchronize()
        if i >= warm:
            ts.append(ev[0].elapsed_time(ev[1]))
    peak = torch.cuda.max_memory_allocated() - before
    ts.sort()
    q = lambda a: ts[min(len(ts) - 1, int(a * len(ts)))]  # noqa: E731
    # extra device memory of the step beyond inputs and gradients: the per-row loss and any allocation during it
    extra = (loss.numel() * 4 + peak) / 2**20
    return dict(impl=f"ccekit-triton-shared{r}", setting=name, N=n, V=v, K=kk, D=dd, dtype=dtype, ms=q(0.5), p20=q(0.2), p80=q(0.8), peak_mib=extra, card=card,
                schedule=dict(kf["schedule"], warps=warps, stages=stages, blockD=bd), note=f"fused fwd+bwd, negatives shared by {r} rows, drawn in the kernel")


CONFIGS = [tuple(int(x) for x in c.split("/")) for c in os.environ.get("CONFIGS", "4/2,8/2,8/3").split(",")]
rows, fails = [], []
print(f"{card}, torch {torch.__version__}, triton {triton.__version__}", flush=True)
for d in dirs:
    ks = kernels(d)
    fails += [f"{os.path.basename(d)}: {f}" for f in check(d, ks)]
    for st in SETTINGS:
        for dtype in ("f16", "bf16"):
            for warps, stages in CONFIGS:
                try:
                    row = time_setting(ks, dtype, st, warps, stages)
                except Exception as ex:  # noqa: BLE001 (a configuration that does not fit is a row with a note)
                    row = dict(impl="ccekit-triton-shared", setting=st[0], dtype=dtype, ms=None, card=card, schedule=dict(dir=os.path.basename(d), warps=warps, stages=stages), note=str(ex).split("\n")[0][:200])
                rows.append(row)
                print(f"{st[0]:11} {dtype:4} {os.path.basename(d):10} w{warps} s{stages}: {row['ms'] if row['ms'] is None else round(row['ms'], 3)} ms", flush=True)
    json.dump({"card": card, "triton": triton.__version__, "torch": torch.__version__, "check_failures": fails, "rows": rows, "partial": True}, open(out_json, "w"), indent=1)
json.dump({"card": card, "triton": triton.__version__, "torch": torch.__version__, "check_failures": fails, "rows": rows}, open(out_json, "w"), indent=1)
print(f"checks: {'all passed' if not fails else fails}")
sys.exit(1 if fails else 0)
