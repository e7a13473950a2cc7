"""GPU check and timing of the emitted PyTorch package's deterministic dC (run on the GPU machine):
  python3 bench/torch_deterministic_gpu.py out/torch OUT.json
Checks cce_minus_loss(..., deterministic=True) against its float64 reference on fresh random inputs (SIMT
kernels per row, Triton tile kernels and SIMT kernels for shared negatives), runs each twice and requires
bit-identical gradients; then, at the paper's settings (fp16, mean), times one step with float-atomic and with
deterministic dC and counts the elements of dC that differ between two runs on the same inputs."""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import SETTINGS, bits, median_ms, package_cases, rel, start  # noqa: E402

dev, card = start(sys.argv[1])
from ccekit_torch import _tile, cce_minus_loss  # noqa: E402

rows, fails = [], 0


def grads(e, c, t, **kw):
    e1, c1 = e.clone().requires_grad_(), c.clone().requires_grad_()
    loss = cce_minus_loss(e1, c1, t, **kw)
    loss.backward(torch.ones_like(loss) if loss.dim() else None)
    return loss.detach(), e1.grad, c1.grad


for dtype, tol, fields, (e, c, t, neg), kw in package_cases(_tile, dev):
    a = grads(e, c, t, deterministic=True, **kw)
    b = grads(e, c, t, deterministic=True, **kw)
    ref = grads(e.double().cpu(), c.double().cpu(), t.cpu(), **(dict(kw, negatives=neg.cpu()) if "negatives" in kw else kw))
    errs = {"loss": rel(a[0].cpu(), ref[0]), "dE": rel(a[1].cpu(), ref[1]), "dC": rel(a[2].cpu(), ref[2])}
    same = all(torch.equal(bits(x), bits(y)) for x, y in zip(a[1:], b[1:]))
    ok = all(x <= tol for x in errs.values()) and same
    fails += 0 if ok else 1
    rows.append({**fields, **errs, "bit_identical_twice": same, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} {rows[-1]}")
print(f"deterministic dC through the package: {len(rows) - fails} passed, {fails} failed ({card})")



timing = []
for name, (n, v, k, d) in SETTINGS.items():
    e = (torch.randn(n, d, device=dev) * 2 / d**0.5).half().requires_grad_()
    c = (torch.randn(v, d, device=dev) * 2 / d**0.5).half().requires_grad_()
    t = torch.randint(0, v, (n,), device=dev)
    for share in (None, 64):
        for det in (False, True):
            def step():
                e.grad = c.grad = None
                cce_minus_loss(e, c, t, num_negatives=k, seed=7, share_rows=share, deterministic=det).backward()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            ms = median_ms(step, reps=3 if name == "zvuk" and not share else 5, warmup=2)
            peak = (torch.cuda.max_memory_allocated() - base) / 2**20
            step()
            g1 = c.grad.clone()
            step()
            differ = int((bits(g1) != bits(c.grad)).sum())
            row = {"setting": name, "N": n, "V": v, "K": k, "D": d, "dtype": "f16", "share_rows": share, "deterministic": det, "ms": ms,
                   "peak_mib_incl_grads": peak, "dC_elements_differing_between_two_runs": differ, "card": card, "path": "ccekit_torch package, in-kernel sampling, mean"}
            timing.append(row)
            print(f"{name:11s} share={share or '-':>3} det={det!s:5s} {ms:8.2f} ms  peak +{peak:7.0f} MiB  dC differing between runs: {differ}")
    del e, c, t
    torch.cuda.empty_cache()
json.dump({"card": card, "torch": torch.__version__, "checks": rows, "timing": timing}, open(sys.argv[2], "w"), indent=1)
sys.exit(1 if fails else 0)
