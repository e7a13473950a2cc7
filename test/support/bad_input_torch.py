"""Bad input to the emitted ccekit_torch package (test/bad-input-torch.test.ts): every case must raise one ValueError
whose message starts with "<argument>:", quickly and without a large allocation; the valid controls must compute
what the PyTorch reference computes. Prints one JSON object. Usage: python3 bad_input_torch.py PKG_DIR"""
import json
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, sys.argv[1])
from ccekit_torch import _cuda, _driver, cce_minus_loss, reference_cce_minus_loss  # noqa: E402

torch.manual_seed(0)
N, D, V, K = 9, 5, 40, 3
e = torch.randn(N, D, dtype=torch.float64)
c = torch.randn(V, D, dtype=torch.float64)
t = torch.randint(0, V, (N,))
neg = torch.randint(0, V, (N, K))
probs = torch.rand(V, dtype=torch.float64) + 0.1
meta = torch.device("meta")


def loss(ee=e, cc=c, tt=t, **kw):
    if "negatives" not in kw and "num_negatives" not in kw:
        kw["num_negatives"] = K
    return cce_minus_loss(ee, cc, tt, **kw)


def with_value(x, index, value):
    x = x.clone()
    x[index] = value
    return x


def wide(rows, cols, dtype=torch.float32):
    """A [rows, cols] tensor that holds one element (stride 0): sizes past 32-bit offsets without the memory."""
    return torch.zeros(1, 1, dtype=dtype).expand(rows, cols)


zero_probs = with_value(probs, slice(0, 20), 0.0)
# (argument the error must name, what is wrong, the call)
BAD = [
    ("e", "1-D", lambda: loss(ee=torch.randn(N, dtype=torch.float64))),
    ("e", "3-D", lambda: loss(ee=e.view(N, D, 1))),
    ("e", "integer dtype", lambda: loss(ee=e.long())),
    ("e", "complex dtype", lambda: loss(ee=e.to(torch.complex64))),
    ("e", "a list", lambda: loss(ee=e.tolist())),
    ("e", "None", lambda: loss(ee=None)),
    ("e", "N = 0 rows", lambda: loss(ee=e[:0], tt=t[:0])),
    ("e", "hidden size D = 0", lambda: loss(ee=e[:, :0], cc=c[:, :0])),
    ("e", "NaN", lambda: loss(ee=with_value(e, (3, 2), float("nan")))),
    ("e", "Inf", lambda: loss(ee=with_value(e, (0, 0), float("inf")))),
    ("e", "on another device than c and targets", lambda: loss(ee=e.to(meta))),
    ("e", "sparse layout", lambda: loss(ee=e.to_sparse())),
    ("e", "N·D past 32-bit offsets",
     lambda: loss(ee=wide(2**31, 1), cc=wide(V, 1), tt=wide(2**31, 1, torch.int64)[:, 0])),
    ("e", "every tensor on the meta device", lambda: loss(ee=e.to(meta), cc=c.to(meta), tt=t.to(meta))),
    ("c", "1-D", lambda: loss(cc=torch.randn(V, dtype=torch.float64))),
    ("c", "integer dtype", lambda: loss(cc=c.int())),
    ("c", "hidden size unlike e's", lambda: loss(cc=torch.randn(V, D + 1, dtype=torch.float64))),
    ("c", "V = 1 item", lambda: loss(cc=c[:1], tt=torch.zeros(N, dtype=torch.int64))),
    ("c", "on another device than e and targets", lambda: loss(cc=c.to(meta))),
    ("c", "V·D past 32-bit offsets", lambda: loss(cc=wide(2**31 // D + 1, D, torch.float64))),
    ("c", "a NumPy array", lambda: loss(cc=c.numpy())),
    ("targets", "float dtype", lambda: loss(tt=t.double())),
    ("targets", "bool dtype", lambda: loss(tt=t > 3)),
    ("targets", "2-D", lambda: loss(tt=t.view(N, 1))),
    ("targets", "length unlike N", lambda: loss(tt=t[:-1])),
    ("targets", "an item id = V", lambda: loss(tt=with_value(t, 4, V))),
    ("targets", "a negative id other than ignore_index", lambda: loss(tt=with_value(t, 0, -1))),
    ("targets", "ignore_index that is not the padding used", lambda: loss(tt=with_value(t, 2, -100), ignore_index=-1)),
    ("targets", "on another device than e and c", lambda: loss(tt=t.to(meta))),
    ("targets", "None", lambda: loss(tt=None)),
    ("targets", "tie of devices: e and c against targets and negatives",
     lambda: loss(tt=t.to(meta), negatives=neg.to(meta))),
    ("num_negatives", "0", lambda: loss(num_negatives=0)),
    ("num_negatives", "negative", lambda: loss(num_negatives=-3)),
    ("num_negatives", "bool", lambda: loss(num_negatives=True)),
    ("num_negatives", "float", lambda: loss(num_negatives=2.0)),
    ("num_negatives", "str", lambda: loss(num_negatives="4")),
    ("num_negatives", "N·K past 32-bit offsets", lambda: loss(num_negatives=2**31)),
    ("num_negatives", "2**40", lambda: loss(num_negatives=2**40)),
    ("num_negatives", "G·K past 32-bit offsets with share_rows",
     lambda: loss(ee=torch.zeros(1000, D, dtype=torch.float64), tt=torch.zeros(1000, dtype=torch.int64),
                  num_negatives=2**28, share_rows=16)),
    ("negatives", "both negatives and num_negatives", lambda: loss(negatives=neg, num_negatives=K)),
    ("negatives", "neither negatives nor num_negatives", lambda: cce_minus_loss(e, c, t)),
    ("negatives", "float dtype", lambda: loss(negatives=neg.float())),
    ("negatives", "1-D", lambda: loss(negatives=neg[:, 0])),
    ("negatives", "rows unlike N", lambda: loss(negatives=neg[:-1])),
    ("negatives", "K = 0", lambda: loss(negatives=neg[:, :0])),
    ("negatives", "an item id -1", lambda: loss(negatives=with_value(neg, (1, 1), -1))),
    ("negatives", "an item id = V", lambda: loss(negatives=with_value(neg, (8, 2), V))),
    ("negatives", "on another device than e, c and targets", lambda: loss(negatives=neg.to(meta))),
    ("negatives", "[N, K] with share_rows=16", lambda: loss(negatives=neg, share_rows=16)),
    ("negatives", "an item whose item_probs is 0",
     lambda: loss(negatives=with_value(neg, (5, 0), 3), item_probs=zero_probs)),
    ("negatives", "a list", lambda: loss(negatives=neg.tolist())),
    ("item_probs", "length unlike V", lambda: loss(item_probs=probs[:-1])),
    ("item_probs", "2-D", lambda: loss(item_probs=probs.view(V, 1))),
    ("item_probs", "a negative entry", lambda: loss(item_probs=with_value(probs, 3, -0.5))),
    ("item_probs", "NaN", lambda: loss(item_probs=with_value(probs, 9, float("nan")))),
    ("item_probs", "all zero", lambda: loss(item_probs=torch.zeros(V))),
    ("item_probs", "integer dtype", lambda: loss(item_probs=torch.ones(V, dtype=torch.int64))),
    ("item_probs", "an infinite sum", lambda: loss(item_probs=torch.full((V,), 1e308, dtype=torch.float64))),
    ("item_probs", "a list", lambda: loss(item_probs=probs.tolist())),
    ("ignore_index", "float", lambda: loss(ignore_index=-100.0)),
    ("ignore_index", "bool", lambda: loss(ignore_index=False)),
    ("ignore_index", "str", lambda: loss(ignore_index="-100")),
    ("ignore_index", "past int32", lambda: loss(ignore_index=2**40)),
    ("ignore_index", "a tensor", lambda: loss(ignore_index=torch.tensor(-100))),
    ("reduction", "unknown name", lambda: loss(reduction="avg")),
    ("reduction", "None", lambda: loss(reduction=None)),
    ("reduction", "int", lambda: loss(reduction=1)),
    ("reduction", "a list", lambda: loss(reduction=["mean"])),
    ("share_rows", "24", lambda: loss(share_rows=24)),
    ("share_rows", "16.0", lambda: loss(share_rows=16.0)),
    ("share_rows", "True", lambda: loss(share_rows=True)),
    ("share_rows", "0", lambda: loss(share_rows=0)),
    ("share_rows", "'64'", lambda: loss(share_rows="64")),
    ("deterministic", "1", lambda: loss(deterministic=1)),
    ("deterministic", "'yes'", lambda: loss(deterministic="yes")),
    ("deterministic", "None", lambda: loss(deterministic=None)),
    ("dc_by_item", "'auto'", lambda: loss(dc_by_item="auto")),
    ("dc_by_item", "1", lambda: loss(dc_by_item=1)),
    ("dc_by_item", "True with reduction='none'", lambda: loss(dc_by_item=True, reduction="none")),
    ("dc_by_item", "True with share_rows", lambda: loss(dc_by_item=True, share_rows=64)),
    ("dc_by_item", "True with deterministic", lambda: loss(dc_by_item=True, deterministic=True)),
    ("seed", "str", lambda: loss(seed="abc")),
    ("seed", "float", lambda: loss(seed=1.5)),
    ("seed", "bool", lambda: loss(seed=True)),
    ("seed", "negative", lambda: loss(seed=-1)),
    ("seed", "2**64", lambda: loss(seed=2**64)),
    ("seed", "a tensor", lambda: loss(seed=torch.tensor(3))),
    ("seed", "with negatives given", lambda: loss(negatives=neg, seed=3)),
    ("seed", "str with item_probs", lambda: loss(item_probs=probs, seed="7")),
    # The CUDA path's check of the package's kernels against the call (its pure part runs without a GPU).
    ("e", "CUDA: D no emitted schedule serves",
     lambda: _cuda.check_supported(torch.float32, 65, "uniform", "philox")),
    ("e", "CUDA: D no emitted schedule serves, given q, by item",
     lambda: _cuda.check_supported(torch.float32, 65, "given", "tensor", by_item=True)),
    ("e", "CUDA: share_rows with a D that no vector width divides",
     lambda: _cuda.check_supported(torch.float32, 63, "uniform", "tensor", share=64)),
    ("e", "CUDA: a dtype the package was not emitted for",
     lambda: _cuda.check_supported(torch.bfloat16, 64, "uniform", "philox")),
    ("share_rows", "CUDA: a group size without kernels",
     lambda: _cuda.check_supported(torch.float32, 64, "uniform", "philox", share=16)),
]


def finite_scalar(x):
    return isinstance(x, torch.Tensor) and x.dim() == 0 and bool(torch.isfinite(x))


def same(a, b, tol=1e-12):
    return a.shape == b.shape and bool(((a.double() - b.double()).abs() <= tol * (1 + b.double().abs())).all())


def launch_refused():
    """launch never starts a kernel whose schedule does not serve D (vec must divide it), even when asked to."""
    k = next(k for k in _cuda._MANIFEST["kernels"] if k["pass"] == "forward" and k["schedule"]["vec"] == 4)
    try:
        _driver.launch(k, None, 1, {}, {"D": 63})
    except _cuda.CcekitCudaError:
        return True
    return False


def grads_match():
    """dE and dC of the package's loss equal autograd's through the reference (sum, explicit negatives)."""
    got = [x.clone().requires_grad_() for x in (e, c)]
    want = [x.clone().requires_grad_() for x in (e, c)]
    loss(got[0], got[1], negatives=neg, reduction="sum").backward()
    reference_cce_minus_loss(want[0], want[1], t, neg, reduction="sum").backward()
    return all(same(a.grad, b.grad) for a, b in zip(got, want))


def supported(d, *args, **kw):
    """The CUDA path's check accepts the call (f32 kernels)."""
    return _cuda.check_supported(torch.float32, d, *args, **kw) is None


ref = reference_cce_minus_loss
shared_neg = torch.randint(0, V, (1, K))
some_ignored = with_value(with_value(t, 0, -100), 5, -100)
# (what is valid, the check: True when the call computed what it should)
CONTROLS = [
    ("explicit negatives equal the reference", lambda: same(loss(negatives=neg), ref(e, c, t, neg))),
    ("item_probs and explicit negatives",
     lambda: same(loss(negatives=neg, item_probs=probs), ref(e, c, t, neg, probs))),
    ("ignore_index=0, a real item id",
     lambda: same(loss(negatives=neg, ignore_index=0), ref(e, c, t, neg, ignore_index=0))),
    ("ignored rows leave the mean", lambda: same(loss(tt=some_ignored, negatives=neg), ref(e, c, some_ignored, neg))),
    ("every row ignored: loss 0", lambda: float(loss(tt=torch.full((N,), -100), negatives=neg)) == 0.0),
    ("ignore_index=2**31-1", lambda: finite_scalar(loss(ignore_index=2**31 - 1))),
    ("reduction none with dc_by_item=False", lambda: same(loss(negatives=neg, reduction="none", dc_by_item=False),
                                                          ref(e, c, t, neg, reduction="none"))),
    ("dc_by_item=True with mean", lambda: same(loss(negatives=neg, dc_by_item=True), ref(e, c, t, neg))),
    ("deterministic=True", lambda: same(loss(negatives=neg, deterministic=True), ref(e, c, t, neg))),
    ("share_rows=16: one row of negatives for all 9 rows",
     lambda: same(loss(negatives=shared_neg, share_rows=16), ref(e, c, t, shared_neg.expand(N, K)))),
    ("seed=0 is reproducible", lambda: float(loss(seed=0)) == float(loss(seed=0))),
    ("seed=2**64-1 is reproducible", lambda: float(loss(seed=2**64 - 1)) == float(loss(seed=2**64 - 1))),
    ("a NumPy int seed equals the int", lambda: float(loss(seed=np.int64(11))) == float(loss(seed=11))),
    ("seeded draws from item_probs are reproducible",
     lambda: float(loss(item_probs=probs, seed=5)) == float(loss(item_probs=probs, seed=5))),
    ("drawn negatives never take an item of probability 0",
     lambda: finite_scalar(loss(item_probs=zero_probs, num_negatives=64))),
    ("tiny item_probs (normalized in float64)",
     lambda: finite_scalar(loss(item_probs=torch.full((V,), 1e-60, dtype=torch.float64), seed=1))),
    ("float16 e with float32 c", lambda: finite_scalar(loss(ee=e.half(), cc=c.float(), negatives=neg))),
    ("int32 and uint8 targets",
     lambda: same(loss(tt=t.int(), negatives=neg), loss(tt=t.to(torch.uint8), negatives=neg))),
    ("N = 1, V = 2, D = 1", lambda: finite_scalar(cce_minus_loss(torch.ones(1, 1), torch.ones(2, 1), torch.tensor([1]),
                                                                 num_negatives=1))),
    ("gradients equal the reference's", lambda: grads_match()),
    ("NaN in c: no check reads c [V, D]; the loss is NaN",
     lambda: bool(torch.isnan(loss(cc=torch.full_like(c, float("nan")), negatives=neg)))),
    ("CUDA check: D served by the vec 1 fallback", lambda: supported(63, "uniform", "philox")),
    ("CUDA check: by item at D = 64", lambda: supported(64, "given", "tensor", by_item=True)),
    ("CUDA check: share_rows=128 at D = 60, deterministic",
     lambda: supported(60, "uniform", "tensor", share=128, det=True)),
    ("CUDA check: Triton tiles take any D", lambda: supported(63, "uniform", "tensor", share=64, tiles=True)),
    ("CUDA launch refuses a schedule whose vec does not divide D", launch_refused),
]


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(call):
    before = peak_mb()
    t0 = time.perf_counter()
    try:
        value = call()
        kind, message = None, None
    except Exception as err:  # noqa: BLE001 - the test reports whatever came out
        value, kind, message = None, type(err).__name__, str(err)
    return value, kind, message, (time.perf_counter() - t0) * 1000, peak_mb() - before


loss(negatives=neg)  # warm up (first-call costs are not the checks')
out = {"cases": [], "controls": []}
for arg, what, call in BAD:
    value, kind, message, ms, mb = run(call)
    out["cases"].append({"arg": arg, "what": what, "error": kind, "message": message, "ms": ms, "peakGrowthMB": mb})
for what, call in CONTROLS:
    value, kind, message, ms, mb = run(call)
    out["controls"].append({"what": what, "ok": value is True, "error": kind, "message": message, "ms": ms})
print(json.dumps(out))
