#!/usr/bin/env python3
"""In-batch negatives: PyTorch's in-batch softmax against ccekit's candidate sources, fwd + bwd time and memory.

    python3 bench/in_batch.py --package out/torch --out bench/results/in-batch [--n 32768 --d 256 --v 1660000
        --dtype f16 --drawn 512 --share 128]
    python3 bench/in_batch.py --device cpu --n 64 --d 8 --v 500 --drawn 16 --share 16 --dtype f32 --iters 2  # smoke

Methods (one step: the loss over E [N, D], C [V, D], targets [N], then backward into E and C):
  torch-in-batch  logits = E @ C[targets].T ([N, N], softmax in fp32), + log(V-1) (uniform q) - log(k_i), the
                  row's own target and its duplicates masked (-inf), cross-entropy with the target logit: the
                  same loss as ccekit's in-batch one (the report gives their difference).
  in-batch        cce_minus_loss(negatives="in-batch").
  mixed           cce_minus_loss(negatives="in-batch", num_negatives=K, share_rows=R): N in-batch + K drawn,
                  the draws shared by each group of R rows (the package's tile kernels).
  shared          cce_minus_loss(num_negatives=N+K, share_rows=R): the same candidate count, shared by groups of R.
Time: CUDA events around fwd+bwd after warm-up, the median of --iters (>= 10 on CUDA). Memory: the step's peak
torch.cuda.max_memory_allocated minus what was allocated before it (the inputs) and minus the returned
gradients (dE, dC). On the CPU: wall time, no memory. Writes in_batch.json and in_batch.md into --out.
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=32768, help="rows N (the batch's targets are the in-batch candidates)")
    p.add_argument("--d", type=int, default=256, help="hidden size D")
    p.add_argument("--v", type=int, default=1660000, help="catalog size V")
    p.add_argument("--dtype", choices=list(DTYPES), default="f16")
    p.add_argument("--drawn", type=int, default=512, help="K drawn negatives of the mixed and shared methods")
    p.add_argument("--share", type=int, default=128, help="share_rows of the shared method")
    p.add_argument("--iters", type=int, default=10, help="timed steps per method (the median is reported)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--package", default="out/torch", help="folder holding ccekit_torch/")
    p.add_argument("--out", default=None, help="folder for in_batch.json and in_batch.md")
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    p.add_argument("--methods", default="torch-in-batch,in-batch,mixed,shared", help="comma-separated subset")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", action="store_true", help="CUDA time per kernel of one step of each method")
    args = p.parse_args(argv)
    if args.n < 2 or args.d < 1 or args.v < 2 or args.drawn < 1 or args.iters < 1:
        p.error("--n >= 2, --d >= 1, --v >= 2, --drawn >= 1, --iters >= 1")
    return args


def torch_in_batch(E, C, t):
    """PyTorch's in-batch softmax with the CCE- correction (uniform q = 1/(V-1), -log k_i)."""
    v = C.shape[0]
    ct = C[t]  # [N, D]
    logits = (E @ ct.t()).float()  # [N, N]
    dup = t[None, :] == t[:, None]  # the row's own target and its duplicates
    k = (~dup).sum(1, keepdim=True).clamp_min(1).float()
    logits = (logits + math.log(v - 1) - torch.log(k)).masked_fill(dup, float("-inf"))
    pos = (E.float() * ct.float()).sum(1, keepdim=True)
    logits = torch.cat([pos, logits], 1)
    return F.cross_entropy(logits, torch.zeros(t.shape[0], dtype=torch.long, device=t.device))


def methods(cce, args):
    n, k = args.n, args.drawn
    return {
        "torch-in-batch": torch_in_batch,
        "in-batch": lambda E, C, t: cce(E, C, t, negatives="in-batch"),
        "mixed": lambda E, C, t: cce(E, C, t, negatives="in-batch", num_negatives=k, share_rows=args.share),
        "shared": lambda E, C, t: cce(E, C, t, num_negatives=n + k, share_rows=args.share),
    }


def step(fn, E, C, t):
    E.grad = C.grad = None
    loss = fn(E, C, t)
    loss.backward()
    return loss


def measure(fn, E, C, t, args, dev):
    cuda = dev.type == "cuda"
    for _ in range(args.warmup):
        step(fn, E, C, t)
    extra = None
    if cuda:
        E.grad = C.grad = None
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        loss = step(fn, E, C, t)
        torch.cuda.synchronize(dev)
        grads = sum(g.numel() * g.element_size() for g in (E.grad, C.grad) if g is not None)
        extra = torch.cuda.max_memory_allocated(dev) - base - grads
    else:
        loss = step(fn, E, C, t)
    times = []
    for _ in range(args.iters):
        if cuda:
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            step(fn, E, C, t)
            b.record()
            torch.cuda.synchronize(dev)
            times.append(a.elapsed_time(b))
        else:
            t0 = time.perf_counter()
            step(fn, E, C, t)
            times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": statistics.median(times), "ms_min": min(times), "extra_bytes": extra, "loss": float(loss.detach())}


def profile(fn, E, C, t):
    """CUDA milliseconds per kernel name of one step (torch.profiler), the largest first."""
    from torch.profiler import ProfilerActivity, profile as prof

    with prof(activities=[ProfilerActivity.CUDA]) as p:
        step(fn, E, C, t)
        torch.cuda.synchronize()
    rows = [(e.key, e.device_time_total / 1e3) for e in p.key_averages() if e.device_time_total > 0]
    return dict(sorted(rows, key=lambda x: -x[1])[:8])


def import_package(path):
    init = os.path.join(path, "ccekit_torch", "__init__.py")
    if not os.path.exists(init):
        raise SystemExit(f"in_batch.py: {init} does not exist; emit it with "
                         f"`npx tsx cli/main.ts emit --target torch --out {path}` or pass --package DIR")
    sys.path.insert(0, os.path.abspath(path))
    from ccekit_torch import cce_minus_loss
    return cce_minus_loss


def table(report):
    a = report["args"]
    lines = [f"In-batch negatives, N={a['n']} D={a['d']} V={a['v']} {a['dtype']}, drawn K={a['drawn']}, "
             f"share_rows={a['share']}; {report['device_name']} (torch {report['torch_version']})", "",
             "| method | candidates / row | fwd+bwd ms (median) | extra MiB | loss |", "| --- | --- | --- | --- | --- |"]
    for name, r in report["results"].items():
        mem = "-" if r.get("extra_bytes") is None else f"{r['extra_bytes'] / 2**20:.1f}"
        ms = r["error"] if "error" in r else f"{r['ms']:.3f}"
        loss = "" if "loss" not in r else f"{r['loss']:.5f}"
        lines.append(f"| {name} | {r['candidates']} | {ms} | {mem} | {loss} |")
    if report.get("in_batch_loss_rel_diff") is not None:
        lines += ["", f"torch-in-batch vs ccekit in-batch loss: relative difference "
                      f"{report['in_batch_loss_rel_diff']:.2e}"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cce = import_package(args.package)
    dtype = DTYPES[args.dtype]
    torch.manual_seed(args.seed)
    scale = 1.0 / math.sqrt(args.d)
    E = (torch.randn(args.n, args.d, device=dev) * scale).to(dtype).requires_grad_()
    C = (torch.randn(args.v, args.d, device=dev) * scale).to(dtype).requires_grad_()
    t = torch.randint(0, args.v, (args.n,), device=dev)
    counts = {"torch-in-batch": args.n, "in-batch": args.n, "mixed": args.n + args.drawn,
              "shared": args.n + args.drawn}
    results = {}
    for name in args.methods.split(","):
        fn = methods(cce, args).get(name)
        if fn is None:
            raise SystemExit(f"in_batch.py: unknown method {name!r}")
        try:
            r = measure(fn, E, C, t, args, dev)
        except (RuntimeError, NotImplementedError, ValueError) as exc:  # e.g. out of memory or no kernel: reported
            r = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"}
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        if args.profile and dev.type == "cuda" and "error" not in r:
            r["kernels_ms"] = profile(fn, E, C, t)
        r["candidates"] = counts[name]
        results[name] = r
        print(f"{name}: {r}", file=sys.stderr, flush=True)
    a, b = results.get("torch-in-batch", {}), results.get("in-batch", {})
    diff = abs(a["loss"] - b["loss"]) / max(1e-30, abs(a["loss"])) if "loss" in a and "loss" in b else None
    report = {
        "args": vars(args), "results": results, "in_batch_loss_rel_diff": diff, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or "cpu"),
        "torch_version": torch.__version__, "cuda_version": torch.version.cuda,
    }
    md = table(report)
    print(md)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "in_batch.json"), "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
        with open(os.path.join(args.out, "in_batch.md"), "w") as f:
            f.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
