"""GPU check and timing of the emitted PyTorch package with item embeddings that need no gradient (run on the
GPU machine):   python3 bench/torch_frozen_gpu.py out/torch OUT.json
With c.requires_grad False and a mean / sum reduction, cce_minus_loss runs forward + dE in one sweep (no dC).
Checks dE and the loss against the float64 reference on fresh random inputs (SIMT kernels per row; Triton tile
and SIMT kernels for shared negatives), then times a step at the paper's settings (fp16, mean, in-kernel
sampling) with a trainable and with a frozen item table."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import SETTINGS, median_ms, package_cases, rel, start  # noqa: E402

dev, card = start(sys.argv[1])
from ccekit_torch import _tile, cce_minus_loss  # noqa: E402

rows, fails = [], 0


for dtype, tol, fields, (e, c, t, neg), kw in package_cases(_tile, dev):
    e1 = e.clone().requires_grad_()
    loss = cce_minus_loss(e1, c, t, **kw)
    loss.backward()
    e2 = e.double().cpu().requires_grad_()
    ref = cce_minus_loss(e2, c.double().cpu(), t.cpu(), **(dict(kw, negatives=neg.cpu()) if "negatives" in kw else kw))
    ref.backward()
    errs = {"loss": rel(loss.detach().cpu(), ref.detach()), "dE": rel(e1.grad.cpu(), e2.grad)}
    ok = all(x <= tol for x in errs.values()) and e1.grad.dtype == dtype
    fails += 0 if ok else 1
    rows.append({**fields, **errs, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} {rows[-1]}")
print(f"frozen item table through the package: {len(rows) - fails} passed, {fails} failed ({card})")

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
