"""GPU check and timing of the emitted PyTorch package with dC reduced by item (run on the GPU machine):
    python3 bench/torch_byitem_gpu.py out/torch OUT.json
Per-row negatives, mean / sum, trainable item table: cce_minus_loss(..., dc_by_item=True) runs the forward with
dE in one sweep, then counts, groups and reduces the (row, negative) pairs by item. Checks the loss, dE and dC
against the float64 reference on fresh random inputs (index tensor, popularity q, in-kernel sampling; several
chunks of rows and one), then times a step at the paper's settings (fp16, mean, in-kernel sampling) with
dc_by_item False, True and None (the package's choice)."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import DTYPE_TOL, SETTINGS, case_inputs, median_ms, rel, start  # noqa: E402

dev, card = start(sys.argv[1])
from ccekit_torch import _cuda, cce_minus_loss  # noqa: E402

rows, fails = [], 0
# n, d, v, k, reduction, drawn, popularity q, pair budget (bytes: small ones make many chunks)
CASES = [(513, 64, 4099, 127, "mean", False, False, None), (300, 256, 1009, 255, "sum", True, False, 8 * 255 * 37),
         (1000, 128, 20011, 63, "mean", False, True, 8 * 63 * 101), (77, 40, 3, 33, "sum", False, False, None)]
budget = _cuda._MANIFEST["byItem"]["pairBytes"]
for dtype, tol in DTYPE_TOL:
    for n, d, v, k, reduction, drawn, popular, pair_bytes in CASES:
        _cuda._MANIFEST["byItem"]["pairBytes"] = pair_bytes or budget
        e, c, t, neg = case_inputs(n, d, v, k, None, dtype, dev)
        probs = torch.rand(v, device=dev) + 0.1 if popular else None
        kw = dict(num_negatives=k, seed=2**35 + n) if drawn else dict(negatives=neg)
        e1, c1 = e.clone().requires_grad_(), c.clone().requires_grad_()
        loss = cce_minus_loss(e1, c1, t, item_probs=probs, reduction=reduction, dc_by_item=True, **kw)
        loss.backward()
        e2, c2 = e.double().cpu().requires_grad_(), c.double().cpu().requires_grad_()
        ref = cce_minus_loss(e2, c2, t.cpu(), item_probs=None if probs is None else probs.cpu(), reduction=reduction, **(dict(kw, negatives=neg.cpu()) if "negatives" in kw else kw))
        ref.backward()
        errs = {"loss": rel(loss.detach().cpu(), ref.detach()), "dE": rel(e1.grad.cpu(), e2.grad), "dC": rel(c1.grad.cpu(), c2.grad)}
        ok = all(x <= tol for x in errs.values()) and c1.grad.dtype == dtype
        fails += 0 if ok else 1
        rows.append({"dtype": str(dtype), "N": n, "D": d, "V": v, "K": k, "reduction": reduction, "drawn": drawn, "popularity": popular, "pair_bytes": pair_bytes or budget, **errs, "ok": ok})
        print(f"{'ok  ' if ok else 'FAIL'} {rows[-1]}")
_cuda._MANIFEST["byItem"]["pairBytes"] = budget
print(f"dC by item through the package: {len(rows) - fails} passed, {fails} failed ({card})")

timing = []
for name, (n, v, k, d) in SETTINGS.items():
    e = (torch.randn(n, d, device=dev) * 2 / d**0.5).half().requires_grad_()
    c = (torch.randn(v, d, device=dev) * 2 / d**0.5).half().requires_grad_()
    t = torch.randint(0, v, (n,), device=dev)
    for by_item in (False, True, None):
        def step():
            e.grad = None
            c.grad = None
            cce_minus_loss(e, c, t, num_negatives=k, seed=7, dc_by_item=by_item).backward()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        ms = median_ms(step, reps=3 if name == "zvuk" else 5, warmup=2)
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
        chose = _cuda.dc_by_item_default(c) if by_item is None else by_item
        timing.append({"setting": name, "N": n, "V": v, "K": k, "D": d, "dtype": "f16", "dc_by_item": by_item, "ran_by_item": chose, "ms": ms, "peak_mib_incl_grads": peak, "card": card})
        print(f"{name:11s} dc_by_item={str(by_item):5s} (by item: {chose!s:5s}) {ms:8.2f} ms  peak +{peak:7.0f} MiB")
    del e, c, t
    torch.cuda.empty_cache()
json.dump({"card": card, "torch": torch.__version__, "l2_bytes": getattr(torch.cuda.get_device_properties(dev), "L2_cache_size", None), "checks": rows, "timing": timing}, open(sys.argv[2], "w"), indent=1)
sys.exit(1 if fails else 0)
