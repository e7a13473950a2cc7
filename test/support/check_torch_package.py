"""Checks the emitted ccekit_torch package's CPU path, and its CUDA path's host code with a launcher that does the
kernels' math in PyTorch, against ccekit's float64 reference (fixtures written by
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
        loss = cce_minus_loss(e, c, targets, negatives=negatives, item_probs=probs, reduction=fx["reduction"],
                              share_rows=share)
        grad = torch.tensor(fx["gradOutput"], dtype=dtype)
        loss.backward(grad)
        errs = {"loss": rel(loss, fx["loss"]), "dE": rel(e.grad, fx["dE"]), "dC": rel(c.grad, fx["dC"])}
        ok = all(x <= tol for x in errs.values())
        checks += 1
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} {fx['label']} {str(dtype).replace('torch.', '')} "
              + " ".join(f"{k}={x:.1e}" for k, x in errs.items()))

# The CPU twin of the in-kernel Philox sampler draws the kernels' items, bit for bit.
import os  # noqa: E402
from ccekit_torch import _reference  # noqa: E402

ph = json.load(open(os.path.join(os.path.dirname(sys.argv[2]), "philox.json")))
drawn = _reference.philox_uniform(ph["N"], ph["K"], ph["V"], ph["seed"], torch.device("cpu")).reshape(-1).tolist()
checks += 1
failures += 0 if drawn == ph["expected"] else 1
print(("ok  " if drawn == ph["expected"] else "FAIL") + " philox_uniform equals the host twin of the kernels' sampler")
shared = _reference.philox_uniform(ph["N"], ph["K"], ph["V"], ph["seed"], torch.device("cpu"), stream=1)
shared = shared.reshape(-1).tolist()
checks += 1
failures += 0 if shared == ph["shared"] and shared != drawn else 1
print(("ok  " if shared == ph["shared"] and shared != drawn else "FAIL")
      + " philox_uniform stream 1 (shared negatives) equals the host twin")

# Negatives drawn inside: reproducible with a seed, and the same function of the drawn tensor.
e = torch.randn(9, 5, dtype=torch.float64)
c = torch.randn(40, 5, dtype=torch.float64)
t = torch.randint(0, 40, (9,))
a = cce_minus_loss(e, c, t, num_negatives=7, seed=3)
b = cce_minus_loss(e, c, t, num_negatives=7, seed=3)
checks += 1
failures += 0 if float(a) == float(b) else 1
print(("ok  " if float(a) == float(b) else "FAIL") + " seeded in-call sampling is reproducible")

# The CUDA path's host code on the CPU: steps from the manifest, kernel choice, buffers, scalars, the upstream
# scale, int64 negatives and the returned gradients. The launcher is replaced by one that checks every launch's
# arguments against the kernel's parameters and does what the kernel does with the package's PyTorch path in
# float64; loss and gradients must match ccekit's float64 reference.
import contextlib  # noqa: E402

from ccekit_torch import _byitem, _cuda, _tile, loss as loss_module  # noqa: E402

COUNTERS = set(_cuda.counters()) | {"dc_by_item"}
launched = []


def fake_launch(kernel, device, rows, tensors, scalars, any_d=False):
    o = kernel["options"]
    names = {p["name"] for p in kernel["parameters"]}
    for p in kernel["parameters"]:
        have = tensors.get(p["name"]) is not None if p["kind"] == "tensor" else p["name"] in scalars
        assert have, f"{kernel['file']}: no {p['kind']} {p['name']}"
    assert any_d == (kernel["pass"] in _cuda.counters()), f"{kernel['file']}: any_d={any_d}"
    launched.append((kernel, {k: t.data_ptr() for k, t in tensors.items() if t is not None}))
    n, k, v, share = scalars.get("N"), scalars.get("K"), scalars.get("V"), o.get("share")
    if "negatives" in names:
        # An int64 tensor goes as its int32 words to the i64 kernels, an int32 one as it is to the others.
        words = tensors["negatives"]
        i64 = o.get("negativesDtype") == "i64"
        assert words.dtype == torch.int32 and tuple(words.shape) == (scalars["G"], 2 * k if i64 else k)
        neg = words[:, 0::2].long() if i64 else words.long()
    if kernel["pass"] in COUNTERS:
        return  # dC by item after its sweep: the fake sweep adds all of dC
    assert str(tensors["E"].dtype) == str(tensors["C"].dtype) == {"f32": "torch.float32"}[o["dtype"]]
    if o.get("negatives") == "philox":
        seed = scalars["seed_lo"] | scalars["seed_hi"] << 32
        groups = scalars.get("G", -(-n // share) if share else n)  # the tile kernels take no G
        neg = _reference.philox_uniform(groups, k, v, seed, torch.device("cpu"), stream=1 if share else 0)
    logq = tensors.get("logq")
    ee = tensors["E"].double().requires_grad_()
    cc = tensors["C"].double().requires_grad_()
    g = tensors["dloss"].double() if "dloss" in names else torch.ones(n, dtype=torch.float64)
    with torch.enable_grad():  # autograd Functions run their forward without it
        lq = None if logq is None else logq.double()
        rows_loss = _reference.cce_minus(ee, cc, tensors["targets"].long(), neg, lq, scalars["ignore_index"], "none",
                                         share=share)
        (rows_loss * g * scalars["grad_scale"]).sum().backward()
    if "loss" in names:
        tensors["loss"].copy_(rows_loss.detach())
    if "dE" in names:
        tensors["dE"].copy_(ee.grad)
    if "dC" in names:
        acc = tensors["dC"]
        acc += (cc.grad * scalars["dC_scale"]).round().long() if acc.dtype == torch.int64 else cc.grad.float()


torch.cuda.get_device_name = lambda device=None: "the CPU (host code under test)"
_cuda.launch = _byitem.launch = fake_launch


class StubKernel:
    """What the stub triton.jit makes of an emitted tile kernel: kernel[grid](**arguments) checks that every uint32
    scalar arrives as an int32 bit pattern and is not specialized (else Triton compiles a kernel for each kind of
    seed value), then hands the arguments, less the launch meta-parameters, to fake_launch."""

    def __init__(self, fn, opts):
        file = os.path.basename(fn.__code__.co_filename)
        self.tile = next(t for t in _cuda._MANIFEST["tiles"] if t["file"] == file)
        self.no_spec = set(opts.get("do_not_specialize", ()))

    def __getitem__(self, grid):
        tile = self.tile

        def call(**kw):
            for meta in ("BLOCK_R", "BLOCK_D", "BLOCK_C", "num_warps", "num_stages"):
                kw.pop(meta)
            for p in tile["parameters"]:
                if p["kind"] == "scalar" and p["dtype"] == "u32":
                    assert p["name"] in self.no_spec, f"{tile['file']}: {p['name']} is specialized"
                    assert -2**31 <= kw[p["name"]] < 2**31, f"{tile['file']}: {p['name']} = {kw[p['name']]}"
                    kw[p["name"]] &= 0xFFFFFFFF
            tensors = {k: x for k, x in kw.items() if x is None or isinstance(x, torch.Tensor)}
            fake_launch(tile, None, grid[0], tensors, {k: x for k, x in kw.items() if k not in tensors})
        return call


def stub_triton():
    """A triton module for loading the package's emitted tile modules on the CPU (only what they use at import)."""
    import types

    triton, tl, extra = (types.ModuleType(m) for m in ("triton", "triton.language", "triton.language.extra"))
    tl.constexpr, extra.libdevice, triton.language, tl.extra = object, object(), tl, extra
    triton.jit = lambda fn=None, **opts: StubKernel(fn, opts) if fn else (lambda f: StubKernel(f, opts))
    sys.modules.update({"triton": triton, "triton.language": tl, "triton.language.extra": extra})


stub_triton()
_tile_available = _tile.available
torch.cuda.device = lambda device: contextlib.nullcontext()


def host_case(fx, g_scale=1.0, int64=True, det=False, by_item=False, frozen=False, philox_seed=None, tiles=False):
    """The CUDA path's result for a fixture against the float64 reference (dE and dC times g_scale: the
    fixture's upstream gradient times g_scale is the one given). Returns (errors, checks of no copies)."""
    n, d, v, k, share = fx["N"], fx["D"], fx["V"], fx["K"], fx.get("shareRows")
    e = torch.tensor(fx["E"], dtype=torch.float32).view(n, d).requires_grad_()
    c = torch.tensor(fx["C"], dtype=torch.float32).view(v, d).requires_grad_(not frozen)
    t = torch.tensor(fx["targets"], dtype=torch.int64)
    neg = torch.tensor(fx["negatives"], dtype=torch.int64 if int64 else torch.int32).view(-1, k)
    probs = torch.tensor(fx["itemProbs"], dtype=torch.float64) if fx["itemProbs"] is not None else None
    logq = loss_module._logq(probs, v, e.device)
    launched.clear()
    _tile.available = (lambda *args: True) if tiles else _tile_available
    negatives = (k, philox_seed) if philox_seed is not None else neg
    n_valid = int((t != -100).sum())
    out = loss_module._run_cuda(e, c, t, negatives, logq, -100, fx["reduction"], share, det, by_item, tiles, n_valid)
    grad = torch.tensor(fx["gradOutput"], dtype=torch.float32) * g_scale
    out.backward(grad)
    if philox_seed is None:
        errs = {"loss": rel(out, fx["loss"]), "dE": rel(e.grad, [x * g_scale for x in fx["dE"]])}
        if not frozen:
            errs["dC"] = rel(c.grad, [x * g_scale for x in fx["dC"]])
    else:
        e2, c2 = (x.detach().double().requires_grad_() for x in (e, c))
        want = cce_minus_loss(e2, c2, t, num_negatives=k, seed=philox_seed, reduction=fx["reduction"], share_rows=share)
        want.backward(grad.double())
        errs = {"loss": rel(out, want.tolist()), "dE": rel(e.grad, e2.grad.tolist()),
                "dC": rel(c.grad, c2.grad.tolist())}
    ok = [frozen == (c.grad is None)]
    dc_ptrs = [ptrs["dC"] for _, ptrs in launched if "dC" in ptrs]
    if fx["reduction"] != "none" and float(grad) == 1.0:
        # fp32 table, mean / sum, unit upstream gradient: the kernels' dC accumulator is the returned gradient.
        ok.append(frozen or det or (dc_ptrs and c.grad.data_ptr() == dc_ptrs[-1]))
    if int64 and philox_seed is None:
        # The int64 negatives tensor is what the kernels read: no int32 copy.
        ok.append(all(ptrs["negatives"] == neg.data_ptr() for kern, ptrs in launched if "negatives" in ptrs))
    ok.append(all(kern["file"].endswith(".py") == tiles for kern, _ in launched))
    passes = sorted({kern["pass"] for kern, _ in launched})
    return errs, all(ok), passes


for fx in fixtures:
    share, red = fx.get("shareRows"), fx["reduction"]
    if share not in (None, 64, 128):
        continue  # the package's kernels serve share_rows 64 and 128
    unit = 1.0 if red == "none" else 1.0 / fx["gradOutput"]
    runs = [("int64 negatives", {}), ("int32 negatives, unit upstream gradient", dict(int64=False, g_scale=unit)),
            ("deterministic", dict(det=True)), ("deterministic, unit upstream gradient", dict(det=True, g_scale=unit))]
    if fx["itemProbs"] is None:
        runs += [("in-kernel sampler", dict(philox_seed=2**33 + 5))]
    if red != "none":
        runs += [("frozen items", dict(frozen=True)), ("int64 negatives, unit upstream gradient", dict(g_scale=unit))]
    if share:
        if fx["itemProbs"] is None:
            runs += [("Triton tiles, in-kernel sampler, seed words >= 2**31",
                      dict(tiles=True, philox_seed=0xF0000003_9000000B))]
        runs += [("Triton tiles, int64 negatives", dict(tiles=True)),
                 ("Triton tiles, deterministic, int32 negatives", dict(tiles=True, det=True, int64=False))]
    if red != "none":
        if not share:
            runs += [("dC by item, unit upstream gradient", dict(by_item=True, g_scale=unit)),
                     ("dC by item", dict(by_item=True, int64=False))]
    for what, kw in runs:
        errs, ok, passes = host_case(fx, **kw)
        good = ok and all(x <= 2e-5 for x in errs.values())
        checks += 1
        failures += 0 if good else 1
        print(f"{'ok  ' if good else 'FAIL'} CUDA host code: {fx['label']}, {what}: {' '.join(passes)} "
              + " ".join(f"{k}={x:.1e}" for k, x in errs.items())
              + ("" if ok else " (a copy, a gradient or the kernels)"))

print(f"{checks - failures} passed, {failures} failed")
sys.exit(1 if failures else 0)
