#!/usr/bin/env python3
"""Measured SASRec training steps for `ccekit plan --calibrate`: for each configuration, the median time of a whole
step (model forward, loss, backward, Adam) and its peak memory, next to the same step with a trivial loss (the
model's share), on random item sequences at the planned sizes.

    python3 examples/sasrec/calibrate.py --v 1000000 --d 256 --max-len 200 --blocks 2 \\
        --configs cce-per-row:256:200:512,ce-minus:64:200:512 --ccekit-package out/torch --out runs.json
    ccekit plan --calibrate runs.json            # fits the cost model, stored beside the tuning DB

A configuration is METHOD:BATCH:LENGTH:K (methods of runtime/memplan.ts; K 0 for ce and cce-in-batch). Peak memory is
torch.cuda.max_memory_allocated above what the process held before the model existed (None on the CPU)."""
import argparse
import contextlib
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from losses import make_loss  # noqa: E402
from model import SASRec  # noqa: E402

MODES = {"ce-minus": ("ce-minus", "per-row"), "ce": ("ce", "per-row"), "cce-per-row": ("cce-minus", "per-row"),
         "cce-shared": ("cce-minus", "shared"), "cce-in-batch": ("cce-minus", "in-batch"),
         "cce-mixed": ("cce-minus", "mixed")}


def args_of(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("v", 1_000_000), ("d", 256), ("max-len", 200), ("blocks", 2), ("heads", 1)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--configs", required=True, help="METHOD:BATCH:LENGTH:K[,...]")
    p.add_argument("--share", type=int, default=128)
    p.add_argument("--ccekit-package", default="out/torch")
    p.add_argument("--amp", choices=("bf16", "off"), default="bf16")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    a.parsed = []
    for text in a.configs.split(","):
        parts = text.split(":")
        if len(parts) != 4 or parts[0] not in MODES or not all(x.isdigit() for x in parts[1:]):
            p.error(f"--configs: {text!r} is not METHOD:BATCH:LENGTH:K with METHOD one of {', '.join(MODES)}")
        a.parsed.append({"method": parts[0], "batch": int(parts[1]), "seqLen": int(parts[2]), "K": int(parts[3])})
    return a


def measure(a, config, dev, trivial):
    torch.manual_seed(0)
    model = SASRec(a.v, a.d, a.blocks, a.heads, a.max_len, 0.0).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    name, mode = MODES[config["method"]]
    loss_fn = None if trivial else make_loss(name, a.v, max(1, config["K"]), a.ccekit_package, None,
                                             a.share if mode in ("shared", "mixed") else None, False, mode)
    b, length = config["batch"], config["seqLen"]
    ids = torch.randint(1, a.v + 1, (b, length), device=dev)
    tg = torch.randint(0, a.v, (b * length,), device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" and a.amp == "bf16" else None
    times = []
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    for i in range(a.steps + 2):
        t0 = time.perf_counter()
        with amp if amp is not None else contextlib.nullcontext():
            h = model(ids).reshape(-1, a.d)
            loss = h.float().pow(2).mean() if trivial else loss_fn(h, model.catalog(), tg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append((time.perf_counter() - t0) * 1e3)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
    del model, opt
    return statistics.median(times[2:]), peak


def main(argv=None):
    a = args_of(argv)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    runs = []
    for config in a.parsed:
        ms, peak = measure(a, config, dev, trivial=False)
        model_ms, model_peak = measure(a, config, dev, trivial=True)
        runs.append({"config": config, "stepMs": ms, "peakBytes": peak, "modelMs": model_ms,
                     "modelPeakBytes": model_peak})
        print(f"{config}: step {ms:.2f} ms (model {model_ms:.2f}), peak {peak}", file=sys.stderr, flush=True)
    card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    model = {"V": a.v, "D": a.d, "maxLen": a.max_len, "blocks": a.blocks, "heads": a.heads}
    with open(a.out, "w") as f:
        json.dump({"device": card, "torch": torch.__version__, "model": model, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
