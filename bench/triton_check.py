"""Runs ccekit's emitted Triton kernels on the GPU and checks them against the float64 PyTorch reference of the
emitted torch package (run on the GPU machine):
  python3 bench/triton_check.py out/triton out/torch
Cases: sampled uniform / given q with an index tensor, and with in-kernel Philox negatives (whose indices are
drawn by ccekit_torch's host twin of the sampler here, so the reference sees the same items)."""
import importlib.util
import json
import math
import os
import sys

import torch

tdir, pkg = sys.argv[1], sys.argv[2]
sys.path.insert(0, pkg)
from ccekit_torch import reference_cce_minus_loss  # noqa: E402

manifest = json.load(open(os.path.join(tdir, "manifest.json")))
dev = torch.device("cuda")


def load(file):
    spec = importlib.util.spec_from_file_location(file[:-3], os.path.join(tdir, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def kernel(pass_, sampling, negatives, dtype):
    for k in manifest["kernels"]:
        o = k["options"]
        tag = f"{sampling}{'_philox' if negatives == 'philox' else ''}_{dtype}"
        if k["pass"] == pass_ and o["mode"] == "sampled" and k["file"].endswith(f"__{tag}.py"):
            return k, load(k["file"])
    raise SystemExit(f"no kernel {pass_} {sampling} {negatives} {dtype}")


M0, M1, W0, W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85


def philox(c, k):
    c = [x & 0xFFFFFFFF for x in c]
    k0, k1 = k
    for r in range(10):
        if r:
            k0, k1 = (k0 + W0) & 0xFFFFFFFF, (k1 + W1) & 0xFFFFFFFF
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & 0xFFFFFFFF, p1 & 0xFFFFFFFF, ((p0 >> 32) ^ c[3] ^ k1) & 0xFFFFFFFF, p0 & 0xFFFFFFFF]
    return c


def host_negatives(n, kk, v, seed, alias):
    out = torch.empty(n, kk, dtype=torch.int64)
    for i in range(n):
        for j in range(kk):
            x0, x1, _, _ = philox([j, i, 0, 0], [seed & 0xFFFFFFFF, seed >> 32])
            col = (x0 * v) >> 32
            if alias is not None and not (alias[0][col] == 0xFFFFFFFF or x1 < alias[0][col]):
                col = alias[1][col]
            out[i, j] = col
    return out


def build_alias(q):
    v = len(q)
    scaled = [x / sum(q) * v for x in q]
    small = [i for i, p in enumerate(scaled) if p < 1]
    large = [i for i, p in enumerate(scaled) if p >= 1]
    prob, alias = [1.0] * v, list(range(v))
    while small and large:
        s, l = small.pop(), large.pop()
        prob[s], alias[s] = scaled[s], l
        scaled[l] = scaled[l] + scaled[s] - 1
        (small if scaled[l] < 1 else large).append(l)
    th = [0xFFFFFFFF if p >= 1 else min(0xFFFFFFFE, math.floor(p * 2**32)) for p in prob]
    return th, alias


fails = 0
torch.manual_seed(3)
for sampling in ("uniform", "given"):
    for negatives in ("tensor", "philox"):
        n, d, v, kk = 97, 64, 1009, 37
        e = torch.randn(n, d, device=dev) * 0.25
        c = torch.randn(v, d, device=dev) * 0.25
        t = torch.randint(0, v, (n,), device=dev, dtype=torch.int32)
        t[::7] = -100
        probs = (torch.rand(v, dtype=torch.float64) + 0.05) if sampling == "given" else None
        logq = torch.log(probs / probs.sum()).float().to(dev) if probs is not None else None
        seed = 2**33 + 99
        alias = build_alias(probs.tolist()) if (probs is not None and negatives == "philox") else None
        neg = host_negatives(n, kk, v, seed, alias).to(dev).int() if negatives == "philox" else torch.randint(0, v, (n, kk), device=dev, dtype=torch.int32)
        (kf, fwd), (kb, bwd) = kernel("forward", sampling, negatives, "f32"), kernel("backward", sampling, negatives, "f32")
        loss = torch.full((n,), float("nan"), device=dev)
        lse = torch.full((n,), float("nan"), device=dev)
        kacc = torch.full((n,), -1, device=dev, dtype=torch.int32)
        de = torch.full((n, d), float("nan"), device=dev)
        dc = torch.zeros(v, d, device=dev)
        live = int((t != -100).sum())
        args = dict(E=e, C=c, targets=t, ignore_index=-100, N=n, D=d, V=v, K=kk)
        if sampling == "uniform":
            args["logq_uniform"] = -math.log(v - 1)
        else:
            args["logq"] = logq
        if negatives == "tensor":
            args["negatives"] = neg
        else:
            args.update(seed_lo=seed & 0xFFFFFFFF, seed_hi=seed >> 32)
            if alias is not None:
                words = [w for pair in zip(alias[0], alias[1]) for w in pair]
                bits = torch.tensor([x - 2**32 if x >= 2**31 else x for x in words], dtype=torch.int32, device=dev)
                args.update(alias_table=bits.view(torch.uint32), V2=2 * v)
        fa = {k["name"]: args.get(k["name"]) for k in kf["parameters"] if k["name"] != "params"}
        fa.update(loss=loss, lse=lse, kacc=kacc)
        getattr(fwd, "launch_" + kf["entry"])(n, **{k: fa[k] for k in [p["name"] for p in kf["parameters"]]})
        ba = {k["name"]: args.get(k["name"]) for k in kb["parameters"]}
        ba.update(lse=lse, kacc=kacc, grad_scale=1.0 / live, dE=de, dC=dc)
        getattr(bwd, "launch_" + kb["entry"])(n, **{k: ba[k] for k in [p["name"] for p in kb["parameters"]]})
        torch.cuda.synchronize()
        e2, c2 = e.double().requires_grad_(), c.double().requires_grad_()
        ref = reference_cce_minus_loss(e2, c2, t.long(), neg.long(), probs, -100, "mean")
        ref.backward()
        got = loss.double().sum() / live
        errs = [float((got - ref).abs() / ref.abs()), float((de.double() - e2.grad).abs().max() / e2.grad.abs().max()), float((dc.double() - c2.grad).abs().max() / c2.grad.abs().max())]
        ok = all(x < 1e-4 for x in errs) and torch.isfinite(de).all()
        fails += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} triton {sampling} {negatives}: loss {errs[0]:.1e} dE {errs[1]:.1e} dC {errs[2]:.1e}")
print(f"triton on {torch.cuda.get_device_name()} (triton {__import__('triton').__version__}): {4 - fails} passed, {fails} failed")
sys.exit(1 if fails else 0)
