"""Checks the emitted ccekit_torch package's CPU path against ccekit's float64 reference (fixtures written by
test/torch-package.test.ts) and its host twin of the kernels' Philox sampler; test/bad-input-torch.test.ts drives its
argument errors. Usage: python3 check_torch_package.py PKG_DIR FIXTURES.json"""
import json
import sys

import torch

sys.path.insert(0, sys.argv[1])
from ccekit_torch import cce_minus_loss  # noqa: E402

fixtures = json.load(open(sys.argv[2]))
failures = 0
checks = 0


def rel(a, b):
    a = a.detach().double().reshape(-1)
    b = torch.tensor(b, dtype=torch.float64).reshape(-1)
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


for fx in fixtures:
    for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
        n, d, v, k = fx["N"], fx["D"], fx["V"], fx["K"]
        e = torch.tensor(fx["E"], dtype=torch.float64).view(n, d).to(dtype).requires_grad_()
        c = torch.tensor(fx["C"], dtype=torch.float64).view(v, d).to(dtype).requires_grad_()
        targets = torch.tensor(fx["targets"], dtype=torch.int64)
        share = fx.get("shareRows")
        negatives = torch.tensor(fx["negatives"], dtype=torch.int64).view(-(-n // share) if share else n, k)
        probs = torch.tensor(fx["itemProbs"], dtype=torch.float64) if fx["itemProbs"] is not None else None
        loss = cce_minus_loss(e, c, targets, negatives=negatives, item_probs=probs, reduction=fx["reduction"], share_rows=share)
        grad = torch.tensor(fx["gradOutput"], dtype=dtype) if fx["reduction"] == "none" else torch.tensor(fx["gradOutput"], dtype=dtype)
        loss.backward(grad)
        errs = {"loss": rel(loss, fx["loss"]), "dE": rel(e.grad, fx["dE"]), "dC": rel(c.grad, fx["dC"])}
        ok = all(x <= tol for x in errs.values())
        checks += 1
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {fx['label']} {str(dtype).replace('torch.', '')} " + " ".join(f"{k}={x:.1e}" for k, x in errs.items()))

# The CPU twin of the in-kernel Philox sampler draws the kernels' items, bit for bit.
import os  # noqa: E402
from ccekit_torch import _reference  # noqa: E402

ph = json.load(open(os.path.join(os.path.dirname(sys.argv[2]), "philox.json")))
drawn = _reference.philox_uniform(ph["N"], ph["K"], ph["V"], ph["seed"], torch.device("cpu")).reshape(-1).tolist()
checks += 1
failures += 0 if drawn == ph["expected"] else 1
print(("ok  " if drawn == ph["expected"] else "FAIL") + " philox_uniform equals the host twin of the kernels' sampler")
shared = _reference.philox_uniform(ph["N"], ph["K"], ph["V"], ph["seed"], torch.device("cpu"), stream=1).reshape(-1).tolist()
checks += 1
failures += 0 if shared == ph["shared"] and shared != drawn else 1
print(("ok  " if shared == ph["shared"] and shared != drawn else "FAIL") + " philox_uniform stream 1 (shared negatives) equals the host twin")

# Negatives drawn inside: reproducible with a seed, and the same function of the drawn tensor.
e = torch.randn(9, 5, dtype=torch.float64)
c = torch.randn(40, 5, dtype=torch.float64)
t = torch.randint(0, 40, (9,))
a = cce_minus_loss(e, c, t, num_negatives=7, seed=3)
b = cce_minus_loss(e, c, t, num_negatives=7, seed=3)
checks += 1
failures += 0 if float(a) == float(b) else 1
print(("ok  " if float(a) == float(b) else "FAIL") + " seeded in-call sampling is reproducible")

print(f"{checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
