"""GPU check of the emitted PyTorch package (run on the GPU machine):
  python3 bench/torch_package_gpu.py out/torch [--out FILE.json]
Compares cce_minus_loss's CUDA path with its float64 PyTorch reference on fresh random inputs (fp32/fp16/bf16,
uniform and given q, mean/sum/none, collisions, ignored rows, odd sizes), checks autocast, and times one
paper-sized step against the PyTorch CE- baseline formula."""
import json
import sys
import time

import os

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import median_ms, rel  # noqa: E402

sys.path.insert(0, sys.argv[1])
from ccekit_torch import cce_minus_loss, reference_cce_minus_loss  # noqa: E402

dev = torch.device("cuda")
torch.manual_seed(int(time.time()) % 100000)
rows = []
fails = 0



# Tolerances on what the package returns: the loss ('none': per row) and the gradients come back in the
# inputs' dtype, so bf16 results carry bf16's rounding (half an ulp = 2^-8 relative) on top of the kernels' 1e-3.
for dtype, (tl, tg) in ((torch.float32, (1e-5, 1e-4)), (torch.float16, (1e-3, 1e-3)), (torch.bfloat16, (1e-3 + 2**-8, 1e-3 + 2**-8))):
    for n, d, v, k in ((1, 64, 2, 1), (7, 3, 61, 5), (513, 256, 4099, 127), (4099, 64, 20011, 1000), (129, 257, 97, 33)):
        for sampling in ("uniform", "given"):
            for reduction in ("mean", "sum", "none"):
                e = (torch.randn(n, d, device=dev) * 2 / d**0.5).to(dtype)
                c = (torch.randn(v, d, device=dev) * 2 / d**0.5).to(dtype)
                t = torch.randint(0, v, (n,), device=dev)
                t[torch.rand(n, device=dev) < 0.15] = -100
                probs = torch.rand(v, device=dev) + 0.05 if sampling == "given" else None
                neg = torch.randint(0, v, (n, k), device=dev)
                hit = torch.rand(n, k, device=dev) < 0.1
                neg = torch.where(hit & (t[:, None] >= 0), t[:, None].clamp_min(0).expand(n, k), neg)
                e1, c1 = e.clone().requires_grad_(), c.clone().requires_grad_()
                loss = cce_minus_loss(e1, c1, t, negatives=neg, item_probs=probs, reduction=reduction)
                g = torch.rand_like(loss) + 0.5
                loss.backward(g)
                e2, c2 = e.double().requires_grad_(), c.double().requires_grad_()
                ref = reference_cce_minus_loss(e2, c2, t, neg, probs, -100, reduction)
                ref.backward(g.double())
                errs = {"loss": rel(loss.detach(), ref.detach()), "dE": rel(e1.grad, e2.grad), "dC": rel(c1.grad, c2.grad)}
                ok = errs["loss"] <= tl and errs["dE"] <= tg and errs["dC"] <= tg and e1.grad.dtype == dtype and c1.grad.dtype == dtype
                fails += 0 if ok else 1
                rows.append({"dtype": str(dtype), "N": n, "D": d, "V": v, "K": k, "sampling": sampling, "reduction": reduction, **errs, "ok": ok})
                if not ok:
                    print("FAIL", rows[-1])
print(f"cuda path vs float64 reference: {len(rows) - fails} passed, {fails} failed ({torch.cuda.get_device_name()})")

# In-kernel sampling (no negatives passed, uniform q): the CUDA kernels and the CPU twin draw the same items.
for dtype in (torch.float32, torch.bfloat16):
    e = (torch.randn(301, 64, device=dev) * 0.25).to(dtype)
    c = (torch.randn(5003, 64, device=dev) * 0.25).to(dtype)
    t = torch.randint(0, 5003, (301,), device=dev)
    t[::9] = -100
    e1, c1 = e.clone().requires_grad_(), c.clone().requires_grad_()
    loss = cce_minus_loss(e1, c1, t, num_negatives=255, seed=2**35 + 5)
    loss.backward()
    e2, c2 = e.double().cpu().requires_grad_(), c.double().cpu().requires_grad_()
    ref = cce_minus_loss(e2, c2, t.cpu(), num_negatives=255, seed=2**35 + 5)
    ref.backward()
    tol = 1e-4 if dtype == torch.float32 else 1e-3 + 2**-8
    errs = {"loss": rel(loss.detach().cpu(), ref.detach()), "dE": rel(e1.grad.cpu(), e2.grad), "dC": rel(c1.grad.cpu(), c2.grad)}
    ok = all(x <= tol for x in errs.values())
    fails += 0 if ok else 1
    rows.append({"dtype": str(dtype), "philox": True, **errs, "ok": ok})
    print(f"{'ok  ' if ok else 'FAIL'} in-kernel sampling {dtype}: " + " ".join(f"{k} {v:.1e}" for k, v in errs.items()))

# Row-tile-shared negatives (share_rows): Triton tile kernels (tensor cores) and, with Triton hidden, the SIMT
# kernels; index tensors [G, K] and in-kernel draws (compared with the CPU path, which draws the same items).
from ccekit_torch import _tile  # noqa: E402

real_available = _tile.available
for backend in ("triton", "simt"):
    _tile.available = real_available if backend == "triton" else (lambda device, share, dtype=None: False)
    for dtype, tol in ((torch.float32, 1e-4), (torch.float16, 1e-3 + 2**-10), (torch.bfloat16, 1e-3 + 2**-8)):
        for share in (64, 128):
            for n, d, v, k, reduction, drawn in ((300, 64, 1009, 77, "none", False), (1000, 256, 20011, 255, "mean", True), (77, 40, 97, 33, "sum", False)):
                e = (torch.randn(n, d, device=dev) * 2 / d**0.5).to(dtype)
                c = (torch.randn(v, d, device=dev) * 2 / d**0.5).to(dtype)
                t = torch.randint(0, v, (n,), device=dev)
                t[torch.rand(n, device=dev) < 0.15] = -100
                g_rows = -(-n // share)
                neg = torch.randint(0, v, (g_rows, k), device=dev)
                neg[0, :3] = t[0].clamp_min(0)
                kw = dict(num_negatives=k, seed=2**33 + n) if drawn else dict(negatives=neg)
                e1, c1 = e.clone().requires_grad_(), c.clone().requires_grad_()
                loss = cce_minus_loss(e1, c1, t, reduction=reduction, share_rows=share, **kw)
                gout = torch.rand_like(loss) + 0.5
                loss.backward(gout)
                e2, c2 = e.double().cpu().requires_grad_(), c.double().cpu().requires_grad_()
                kw2 = dict(num_negatives=k, seed=2**33 + n) if drawn else dict(negatives=neg.cpu())
                ref = cce_minus_loss(e2, c2, t.cpu(), reduction=reduction, share_rows=share, **kw2)
                ref.backward(gout.double().cpu())
                errs = {"loss": rel(loss.detach().cpu(), ref.detach()), "dE": rel(e1.grad.cpu(), e2.grad), "dC": rel(c1.grad.cpu(), c2.grad)}
                ok = all(x <= tol for x in errs.values()) and e1.grad.dtype == dtype
                fails += 0 if ok else 1
                rows.append({"dtype": str(dtype), "N": n, "D": d, "V": v, "K": k, "share_rows": share, "backend": backend, "drawn": drawn, "reduction": reduction, **errs, "ok": ok})
                if not ok:
                    print("FAIL", rows[-1])
    print(f"shared negatives through the package ({backend}): {sum(1 for r in rows if r.get('backend') == backend and r['ok'])} of {sum(1 for r in rows if r.get('backend') == backend)} passed")
_tile.available = real_available

# autocast: a Linear producing e in bf16, an fp32 embedding table, gradients in the parameters' dtypes.
lin = torch.nn.Linear(64, 64).to(dev)
emb = torch.nn.Parameter(torch.randn(5003, 64, device=dev) * 0.1)
x = torch.randn(777, 64, device=dev)
t = torch.randint(0, 5003, (777,), device=dev)
with torch.autocast("cuda", dtype=torch.bfloat16):
    h = lin(x)
    loss = cce_minus_loss(h, emb, t, num_negatives=255, seed=1)
loss.backward()
auto_ok = emb.grad is not None and emb.grad.dtype == torch.float32 and lin.weight.grad is not None and bool(torch.isfinite(emb.grad).all())
print(f"autocast bf16: loss {float(loss):.4f}, grads {'ok' if auto_ok else 'FAIL'}")
fails += 0 if auto_ok else 1

# One paper-sized step (beauty: N=32768, V=176450, K=511, D=256, fp16), package vs the PyTorch CE- formula.
step = median_ms


n, v, k, d = 32768, 176450, 511, 256
e = (torch.randn(n, d, device=dev) * 0.1).half().requires_grad_()
c = (torch.randn(v, d, device=dev) * 0.1).half().requires_grad_()
t = torch.randint(0, v, (n,), device=dev)
neg = torch.randint(0, v, (n, k), device=dev)


def ccekit():
    e.grad = c.grad = None
    cce_minus_loss(e, c, t, negatives=neg).backward()


def ccekit_philox():
    e.grad = c.grad = None
    cce_minus_loss(e, c, t, num_negatives=k, seed=1).backward()


def torch_ce_minus():
    e.grad = c.grad = None
    logits = torch.bmm(c[neg], e[:, :, None]).squeeze(-1).float()
    hit = neg == t[:, None]
    kk = (k - hit.sum(1, keepdim=True)).clamp_min(1)
    logits = (logits + torch.log(torch.tensor(v - 1.0, device=dev)) - torch.log(kk.float())).masked_fill(hit, float("-inf"))
    pos = (e.float() * c[t].float()).sum(-1, keepdim=True)
    torch.nn.functional.cross_entropy(torch.cat([pos, logits], 1), torch.zeros(n, dtype=torch.long, device=dev)).backward()


torch.cuda.reset_peak_memory_stats()
base = torch.cuda.memory_allocated()
ms_cce = step(ccekit)
peak_cce = (torch.cuda.max_memory_allocated() - base) / 2**20
torch.cuda.reset_peak_memory_stats()
base = torch.cuda.memory_allocated()
ms_philox = step(ccekit_philox)
peak_philox = (torch.cuda.max_memory_allocated() - base) / 2**20
print(f"beauty fp16 through the package with in-kernel sampling (no index tensor): {ms_philox:.2f} ms, peak +{peak_philox:.0f} MiB")
def ccekit_shared():
    e.grad = c.grad = None
    cce_minus_loss(e, c, t, num_negatives=k, seed=1, share_rows=64).backward()


torch.cuda.reset_peak_memory_stats()
base = torch.cuda.memory_allocated()
ms_shared = step(ccekit_shared)
peak_shared = (torch.cuda.max_memory_allocated() - base) / 2**20
print(f"beauty fp16 through the package with negatives shared by 64 rows (Triton tile kernels): {ms_shared:.2f} ms, peak +{peak_shared:.0f} MiB")
torch.cuda.reset_peak_memory_stats()
base = torch.cuda.memory_allocated()
ms_torch = step(torch_ce_minus)
peak_torch = (torch.cuda.max_memory_allocated() - base) / 2**20
print(f"beauty fp16 fwd+bwd through the package: {ms_cce:.2f} ms, peak +{peak_cce:.0f} MiB (incl. fp32 dC/dE and fp16 grads); torch CE-: {ms_torch:.2f} ms, peak +{peak_torch:.0f} MiB")
if len(sys.argv) > 3:
    json.dump({"card": torch.cuda.get_device_name(), "torch": torch.__version__, "checks": rows, "autocast_ok": auto_ok, "beauty_ms": {"ccekit_package": ms_cce, "ccekit_package_philox": ms_philox, "ccekit_package_shared64": ms_shared, "torch_ce_minus": ms_torch}, "beauty_peak_mib": {"ccekit_package": peak_cce, "ccekit_package_philox": peak_philox, "ccekit_package_shared64": peak_shared, "torch_ce_minus": peak_torch}}, open(sys.argv[3], "w"), indent=1)
sys.exit(1 if fails else 0)
