#!/usr/bin/env python3
"""Measured SASRec training steps for `ccekit plan --calibrate`: for each configuration, the median time of a whole
step (model forward, loss, backward, Adam) and its peak memory, next to the same step with a trivial loss (the
model's share), on random item sequences at the planned sizes; peaks of the whole step and of its two phases
(forward + backward, Adam's step), as runtime/costmodel.ts models them.

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
from methods import METHODS  # noqa: E402
from model import SASRec, make_adam  # noqa: E402



def args_of(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("v", 1_000_000), ("d", 256), ("max-len", 200), ("blocks", 2), ("heads", 1)):
        p.add_argument(f"--{name}", type=int, default=default)
    p.add_argument("--configs", required=True, help="METHOD:BATCH:LENGTH:K[,...]")
    p.add_argument("--share", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.2,
                   help="the model's dropout (train.py's default 0.2: its masks are activation memory)")
    p.add_argument("--ccekit-package", default="out/torch")
    p.add_argument("--amp", choices=("bf16", "off"), default="bf16")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--max-warmup", type=int, default=20, help="the warm-up's most steps (default 20)")
    p.add_argument("--adam", choices=("auto", "fused", "foreach"), default="auto",
                   help="auto: fused on CUDA where torch has it (as train.py)")
    p.add_argument("--device", default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    for flag, v, low in (("--steps", a.steps, 1), ("--max-warmup", a.max_warmup, 2)):
        if v < low:
            p.error(f"{flag} must be >= {low}, got {v}")
    a.parsed = []
    for text in a.configs.split(","):
        parts = text.split(":")
        if len(parts) != 4 or parts[0] not in METHODS or not all(x.isdigit() for x in parts[1:]):
            p.error(f"--configs: {text!r} is not METHOD:BATCH:LENGTH:K with METHOD one of {', '.join(METHODS)}")
        a.parsed.append({"method": parts[0], "batch": int(parts[1]), "seqLen": int(parts[2]), "K": int(parts[3])})
    return a


def measure(a, config, dev, trivial):
    """Median step time over a.steps steps after the warm-up, and the peaks (bytes above what the process held
    before the model) of the whole step and of its phases: forward + backward, and Adam's step. The warm-up is 2
    steps or more: it goes on until two steps in a row agree within 20 % (at most a.max_warmup steps), since a
    kernel's first uses (compiles, caches) can span several steps. Also returns the warm-up's and the timed steps'
    times."""
    torch.manual_seed(0)
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(dev)
    model = SASRec(a.v, a.d, a.blocks, a.heads, a.max_len, a.dropout).to(dev)
    opt, _ = make_adam(model.parameters(), a.adam, dev, 1e-3)
    name, mode, _ = METHODS[config["method"]]
    mode = mode or "per-row"
    amp_dtype = torch.bfloat16 if cuda and a.amp == "bf16" else None
    # As train.py: under autocast the ccekit loss gets bf16 copies of E and C (make_loss's amp_dtype).
    loss_fn = None if trivial else make_loss(name, a.v, max(1, config["K"]), a.ccekit_package, amp_dtype,
                                             a.share if mode in ("shared", "mixed") else None, False, mode)
    b, length = config["batch"], config["seqLen"]
    ids = torch.randint(1, a.v + 1, (b, length), device=dev)
    tg = torch.randint(0, a.v, (b * length,), device=dev)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda and a.amp == "bf16" else None
    times, fb_peak, opt_peak = [], 0, 0

    def peak_since_reset():
        if not cuda:
            return 0
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) - base

    def step():
        if cuda:
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp if amp is not None else contextlib.nullcontext():
            h = model(ids).reshape(-1, a.d)
            # The trivial loss touches the catalog too, so that its gradient is allocated when backward starts, as
            # with the real losses.
            loss = (h.float().pow(2).mean() + model.catalog()[:1].float().sum() * 0.0 if trivial else
                    loss_fn(h, model.catalog(), tg))
        loss.backward()
        fb = peak_since_reset()
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
        opt.step()
        op = peak_since_reset()
        return (time.perf_counter() - t0) * 1e3, fb, op

    warm = []
    while len(warm) < 2 or (len(warm) < a.max_warmup and abs(warm[-1] - warm[-2]) > 0.2 * min(warm[-2:])):
        warm.append(step()[0])
    for _ in range(a.steps):
        ms, fb, op = step()
        times.append(ms)
        fb_peak, opt_peak = max(fb_peak, fb), max(opt_peak, op)
    del model, opt, loss_fn
    steps = {"warmupMs": [round(x, 3) for x in warm], "stepsMs": [round(x, 3) for x in times]}
    if not cuda:
        return statistics.median(times), None, None, None, steps
    return statistics.median(times), max(fb_peak, opt_peak), fb_peak, opt_peak, steps


def main(argv=None):
    a = args_of(argv)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    runs, model_only = [], {}
    for config in a.parsed:
        ms, peak, fb, op, steps = measure(a, config, dev, trivial=False)
        key = (config["batch"], config["seqLen"])
        if key not in model_only:  # the model's share depends on the batch and length only
            model_only[key] = measure(a, config, dev, trivial=True)
        model_ms, model_peak, model_fb, _, model_steps = model_only[key]
        runs.append({"config": config, "stepMs": ms, "peakBytes": peak, "fbPeakBytes": fb, "optPeakBytes": op,
                     "modelMs": model_ms, "modelPeakBytes": model_peak, "modelFbPeakBytes": model_fb,
                     "steps": steps, "modelSteps": model_steps})
        gib = (lambda x: "-" if x is None else f"{x / 2**30:.2f} GiB")
        print(f"{config}: step {ms:.2f} ms (model {model_ms:.2f}), peak {gib(peak)} (forward + backward {gib(fb)}, "
              f"Adam {gib(op)}; model alone {gib(model_peak)})", file=sys.stderr, flush=True)
    card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    model = {"V": a.v, "D": a.d, "maxLen": a.max_len, "blocks": a.blocks, "heads": a.heads}
    with open(a.out, "w") as f:
        json.dump({"device": card, "torch": torch.__version__, "amp": a.amp, "dropout": a.dropout, "adam": make_adam(
            [torch.zeros(1, device=dev, requires_grad=True)], a.adam, dev, 1e-3)[1], "model": model, "runs": runs},
            f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
