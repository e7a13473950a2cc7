#!/usr/bin/env python3
"""The package's Triton tile kernels under many seeds (GPU): each fwd+bwd call's time, and its loss and gradients
against the package's float64 path on the same draws. Triton compiles a kernel variant for each kind of int
argument value (int32 or int64, divisible by 16 or not); the seed words pass as int32 bit patterns and are not
specialized, so only the first call of a mode should compile.
    python3 bench/triton_seeds.py --package out/torch --out seeds.json"""
import argparse
import json
import statistics
import sys
import time

import torch


def rel(x, y):
    """Largest error of x against y, relative to y's largest magnitude."""
    return float((x.double() - y).abs().max() / y.abs().max())


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", default="out/torch")
    p.add_argument("--v", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--rows", type=int, default=12800)
    p.add_argument("--k", type=int, default=2048)
    p.add_argument("--calls", type=int, default=16)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    sys.path.insert(0, a.package)
    from ccekit_torch import cce_minus_loss

    dev = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(7)
    e0 = (torch.randn(a.rows, a.d, generator=g) * 0.3).to(dev, torch.bfloat16)
    c0 = (torch.randn(a.v, a.d, generator=g) * 0.3).to(dev, torch.bfloat16)
    t = torch.randint(0, a.v, (a.rows,), generator=g).to(dev)
    # Seeds whose words cover both int32 halves and multiples of 16 (each a kind of value Triton would specialize).
    words = [(lo, hi) for lo in (0x9000000B, 0x10, 0x7000_0003, 0xF000_0000) for hi in (0xF000_0003, 0x20, 5)]
    seeds = [hi << 32 | lo for lo, hi in words][: a.calls]
    modes = {"shared": {"num_negatives": a.k, "share_rows": 128},
             "mixed": {"negatives": "in-batch", "num_negatives": a.k, "share_rows": 128}}
    out = {"device": torch.cuda.get_device_name(dev), "torch": torch.__version__, "V": a.v, "D": a.d, "N": a.rows,
           "K": a.k, "modes": {}}
    bad = 0
    for name, opts in modes.items():
        times, errs = [], []
        for i, seed in enumerate(seeds):
            e, c = e0.clone().requires_grad_(), c0.clone().requires_grad_()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = cce_minus_loss(e, c, t, seed=seed, **opts)
            loss.backward()
            torch.cuda.synchronize()
            times.append((time.perf_counter() - t0) * 1e3)
            if i % 4 == 0:  # the float64 path on the same draws
                e2, c2 = (x.detach().double().requires_grad_() for x in (e0, c0))
                want = cce_minus_loss(e2, c2, t, seed=seed, **opts)
                want.backward()
                errs.append({"seed": hex(seed), "loss": rel(loss.detach(), want.detach()), "dE": rel(e.grad, e2.grad),
                             "dC": rel(c.grad, c2.grad)})
                del e2, c2, want
        med = statistics.median(times[1:])
        slow = sum(x > 5 * med for x in times[1:])
        worst = max(max(x["loss"], x["dE"], x["dC"]) for x in errs)
        bad += slow > 0 or worst > 1e-2
        out["modes"][name] = {"callsMs": [round(x, 3) for x in times], "medianMs": med, "slowCallsAfterFirst": slow,
                              "vsFloat64": errs}
        print(f"{name}: first call {times[0]:.0f} ms, then median {med:.2f} ms, {slow} of {len(times) - 1} later "
              f"calls over 5x the median; largest error vs float64 {worst:.1e}", flush=True)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=1)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
