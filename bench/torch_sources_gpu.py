#!/usr/bin/env python3
"""The PyTorch package's candidate sources on CUDA against its float64 PyTorch path, on fresh random inputs.

    python3 bench/torch_sources_gpu.py out/torch OUT_JSON

For each source (in-batch of the whole batch with uniform or frequency q; mixed: in-batch plus uniform draws shared
by groups of 64 / 128 rows; positions with per-row negatives from an index tensor (uniform, item_probs) or drawn
in the kernels, and with in-batch candidates) and dtype (f32, f16, bf16), at odd sizes with ignored rows: the loss,
dE and dC of cce_minus_loss on CUDA against the same call on float64 copies (the package's PyTorch path, with the
same seed: the same Philox draws). The CUDA call must run the package's kernels: the PyTorch path is made to raise
while it runs. Prints one line a case and writes the results as JSON."""
import json
import sys

import torch

sys.path.insert(0, sys.argv[1])
import ccekit_torch  # noqa: E402
from ccekit_torch import _reference, cce_minus_loss  # noqa: E402

DT = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}
dev = torch.device("cuda")


def case(name, n, d, v, kw, dtype, ne=None):
    g = torch.Generator(device="cpu").manual_seed(hash(name) % 2**31)
    e64 = torch.randn(ne or n, d, generator=g, dtype=torch.float64) / d ** 0.5
    c64 = torch.randn(v, d, generator=g, dtype=torch.float64) / d ** 0.5
    t = torch.randint(0, v // 3 + 2, (n,), generator=g)  # duplicates among the targets
    t[torch.rand(n, generator=g) < 0.1] = -100
    kw = dict(kw)
    if "positions" in kw:
        kw["positions"] = torch.randperm(ne, generator=g)[:n]
    if kw.pop("freq", False):
        kw["in_batch_probs"] = torch.rand(v, generator=g, dtype=torch.float64) + 0.1
    if kw.pop("probs", False):
        kw["item_probs"] = torch.rand(v, generator=g, dtype=torch.float64) + 0.1
    if kw.pop("given", False):
        kw["negatives"] = torch.randint(0, v, (n, 13), generator=g)
    # Rounded to the storage dtype first, so both calls see the same values.
    e = e64.to(DT[dtype]).to(dev).requires_grad_()
    c = c64.to(DT[dtype]).to(dev).requires_grad_()
    dkw = {k: (x.to(dev) if isinstance(x, torch.Tensor) else x) for k, x in kw.items()}
    if "num_negatives" in dkw:
        dkw["seed"] = 7  # the same draws in both calls
    real = _reference.cce_sources
    _reference.cce_sources = lambda *a, **k: (_ for _ in ()).throw(AssertionError("PyTorch path on CUDA"))
    try:
        loss = cce_minus_loss(e, c, t.to(dev), **dkw)
        loss.backward()
    finally:
        _reference.cce_sources = real
    e2 = e.detach().double().requires_grad_()
    c2 = c.detach().double().requires_grad_()
    ref = cce_minus_loss(e2, c2, t.to(dev), **dkw)
    ref.backward()
    rel = lambda a, b: float((a.double() - b).norm() / b.norm().clamp_min(1e-30))
    out = {"case": name, "dtype": dtype, "loss": rel(loss.detach(), ref.detach()), "dE": rel(e.grad, e2.grad),
           "dC": rel(c.grad, c2.grad)}
    tol = 2e-5 if dtype == "f32" else 2e-2
    out["ok"] = all(out[k] < tol for k in ("loss", "dE", "dC"))
    print(("ok   " if out["ok"] else "FAIL ") + json.dumps(out), flush=True)
    return out


CASES = [
    ("in-batch uniform", 301, 64, 500, {"negatives": "in-batch"}, None),
    ("in-batch freq", 257, 256, 900, {"negatives": "in-batch", "freq": True}, None),
    ("mixed share64", 300, 64, 700, {"negatives": "in-batch", "num_negatives": 40, "share_rows": 64}, None),
    ("mixed share128 freq", 333, 128, 800,
     {"negatives": "in-batch", "num_negatives": 70, "share_rows": 128, "freq": True}, None),
    ("positions philox", 211, 64, 600, {"num_negatives": 17, "positions": True}, 500),
    ("positions tensor item_probs", 190, 256, 400, {"given": True, "probs": True, "positions": True}, 333),
    ("positions in-batch", 150, 64, 300, {"negatives": "in-batch", "positions": True}, 401),
]
results = []
for dtype in ("f32", "f16", "bf16"):
    for name, n, d, v, kw, ne in CASES:
        try:
            results.append(case(name, n, d, v, kw, dtype, ne))
        except Exception as exc:  # reported, and counted as a failure
            results.append({"case": name, "dtype": dtype, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]})
            print("FAIL " + json.dumps(results[-1]), flush=True)
print(f"{sum(r['ok'] for r in results)}/{len(results)} passed on {torch.cuda.get_device_name()}")
json.dump({"card": torch.cuda.get_device_name(), "torch": torch.__version__, "results": results},
          open(sys.argv[2], "w"), indent=1)
