"""GPU check and timing of the emitted PyTorch package with item embeddings that need no gradient (run on the
GPU machine):   python3 bench/torch_frozen_gpu.py out/torch OUT.json
With c.requires_grad False and a mean / sum reduction, cce_minus_loss runs forward + dE in one sweep (no dC).
Checks dE and the loss against the float64 reference on fresh random inputs (SIMT kernels per row; Triton tile
and SIMT kernels for shared negatives), then times a step at the paper's settings (fp16, mean, in-kernel
sampling) with a trainable and with a frozen item table."""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cuda_timing import median_ms  # noqa: E402

sys.path.insert(0, sys.argv[1])
from ccekit_torch import _tile, cce_minus_loss  # noqa: E402

dev = torch.device("cuda")
torch.manual_seed(int(time.time()) % 100000)
card = torch.cuda.get_device_name()
rows, fails = [], 0


def rel(a, b):
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


real_available = _tile.available
cases = [  # n, d, v, k, reduction, share, drawn, backend
    (513, 64, 4099, 127, "mean", None, False, "simt"), (300, 256, 1009, 255, "sum", None, True, "simt"),
    (1000, 256, 20011, 255, "mean", 64, True, "triton"), (77, 40, 97, 33, "sum", 128, False, "triton"),
    (1000, 128, 5003, 127, "mean", 64, True, "simt"),
]
for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 1e-3 + 2**-10), (torch.bfloat16, 1e-3 + 2**-8)):
    for n, d, v, k, reduction, share, drawn, backend in cases:
        _tile.available = real_available if backend == "triton" else (lambda device, share, dtype=None: False)
        e = (torch.randn(n, d, device=dev) * 2 / d**0.5).to(dtype)
        c = (torch.randn(v, d, device=dev) * 2 / d**0.5).to(dtype)
        t = torch.randint(0, v, (n,), device=dev)
        t[torch.rand(n, device=dev) < 0.15] = -100
        neg = torch.randint(0, v, (-(-n // share) if share else n, k), device=dev)
        kw = dict(num_negatives=k, seed=2**33 + n) if drawn else dict(negatives=neg)
        e1 = e.clone().requires_grad_()
        loss = cce_minus_loss(e1, c, t, reduction=reduction, share_rows=share, **kw)
        loss.backward()
        e2 = e.double().cpu().requires_grad_()
        kw2 = kw if drawn else dict(negatives=neg.cpu())
        ref = cce_minus_loss(e2, c.double().cpu(), t.cpu(), reduction=reduction, share_rows=share, **kw2)
        ref.backward()
        errs = {"loss": rel(loss.detach().cpu(), ref.detach()), "dE": rel(e1.grad.cpu(), e2.grad)}
        ok = all(x <= tol for x in errs.values()) and e1.grad.dtype == dtype
        fails += 0 if ok else 1
        rows.append({"dtype": str(dtype), "N": n, "D": d, "V": v, "K": k, "reduction": reduction, "share_rows": share, "drawn": drawn, "backend": backend, **errs, "ok": ok})
        print(f"{'ok  ' if ok else 'FAIL'} {rows[-1]}")
_tile.available = real_available
print(f"frozen item table through the package: {len(rows) - fails} passed, {fails} failed ({card})")

SETTINGS = {"beauty": (32768, 176450, 511, 256), "ml20m": (131072, 15405, 511, 256), "megamarket": (32768, 1661327, 255, 256),
            "zvuk": (131072, 893022, 2047, 256), "small-d": (65536, 100000, 511, 64)}
timing = []
for name, (n, v, k, d) in SETTINGS.items():
    e = (torch.randn(n, d, device=dev) * 2 / d**0.5).half().requires_grad_()
    c0 = (torch.randn(v, d, device=dev) * 2 / d**0.5).half()
    t = torch.randint(0, v, (n,), device=dev)
    for share in (None, 64):
        for frozen in (False, True):
            c = c0 if frozen else c0.clone().requires_grad_()

            def step():
                e.grad = None
                c.grad = None
                cce_minus_loss(e, c, t, num_negatives=k, seed=7, share_rows=share).backward()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            ms = median_ms(step, reps=3 if name == "zvuk" and not share else 5, warmup=2)
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            timing.append({"setting": name, "N": n, "V": v, "K": k, "D": d, "dtype": "f16", "share_rows": share, "frozen_item_table": frozen, "ms": ms, "peak_mib_incl_grads": peak, "card": card})
            print(f"{name:11s} share={share or '-':>3} frozen={frozen!s:5s} {ms:8.2f} ms  peak +{peak:7.0f} MiB")
    del e, c0, t
    torch.cuda.empty_cache()
json.dump({"card": card, "torch": torch.__version__, "checks": rows, "timing": timing}, open(sys.argv[2], "w"), indent=1)
sys.exit(1 if fails else 0)
