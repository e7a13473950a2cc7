#!/usr/bin/env python3
"""Vocabulary-parallel CCE- (ccekit_torch, process_group=) against the plain step, WORLD ranks spawned with
torch.multiprocessing: one GPU a rank over NCCL where the host has WORLD GPUs, else all on GPU 0 over gloo (NCCL
refuses two ranks on one device), or the CPU over gloo.

    python3 bench/vocab_parallel.py --package out/torch --out DIR [--settings beauty,zvuk --dtype f16 --world 2]

Per setting (runtime/presets.ts sizes, per-row uniform negatives drawn in the kernels, mean reduction, fwd+bwd
into e and c): the plain step on rank 0 alone (the whole table), then the vocab-parallel step on every rank (its
shard), split into its parts as ccekit_torch/_vocab.py runs them: the shard's statistics kernel, the exchange and
merge (two all-reduces of O(N) and the logsumexp), the shard's backward kernel, and the dE all-reduce [N, D].
Medians of --repeats after --warmup, rank 0's clock with a barrier and a device sync around each part; each rank's
peak memory (torch.cuda.max_memory_allocated over the vocab-parallel steps). Every rank makes only its own shard of
the table. --plain shard gives the plain step one shard's catalog (the same per-rank size; needed where the whole
table fits no GPU: catalog-100m), --adam keeps each shard as an fp32 parameter with Adam's state and steps it, so the
peak is a trainer's. Writes vocab_parallel.json and vocab_parallel.md.

    python3 bench/vocab_parallel.py --settings catalog-100m --world 4 --plain shard --adam --out DIR"""
import argparse
import datetime
import json
import math
import os
import socket
import statistics
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_common import SETTINGS, rank_device  # noqa: E402

# The paper's settings, and a catalog no single H200 holds with Adam's state (issue 18: 100 M items, D 256).
VOCAB_SETTINGS = {**SETTINGS, "catalog-100m": (131072, 100_000_000, 2047, 256)}

DT = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}


def args_of(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--package", default="out/torch")
    p.add_argument("--out", default=None)
    p.add_argument("--settings", default="beauty,zvuk")
    p.add_argument("--dtype", choices=list(DT), default="f16")
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    p.add_argument("--sizes", default=None, help="N,V,K,D instead of --settings (smoke runs)")
    p.add_argument("--plain", choices=("whole", "shard"), default="whole",
                   help="the plain step's catalog: the whole table, or one rank's shard (the same per-rank size)")
    p.add_argument("--adam", action="store_true",
                   help="keep each shard as an fp32 parameter with Adam's state and step it (memory a rank as trained)")
    return p.parse_args(argv)


def timed(fn, dev, sync):
    dist.barrier()
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, (time.perf_counter() - t0) * 1e3


def rank_main(rank, world, port, a, out_dir):
    sys.path.insert(0, a.package)
    from ccekit_torch import _vocab, cce_minus_loss

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dev, backend = rank_device(rank, world, a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=600))
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    results = {}
    names = ["custom"] if a.sizes else a.settings.split(",")
    for name in names:
        n, v, k, d = [int(x) for x in a.sizes.split(",")] if a.sizes else VOCAB_SETTINGS[name]
        g = torch.Generator().manual_seed(1)
        e = (torch.randn(n, d, generator=g) / d ** 0.5).to(dev, DT[a.dtype])
        t = torch.randint(0, v, (n,), generator=g).to(dev)
        bounds = [v * r // world for r in range(world + 1)]
        lo, hi = bounds[rank], bounds[rank + 1]
        # Every rank makes only its shard (a catalog no GPU holds whole stays out of every GPU).
        shard_of = lambda rows, seed: (torch.randn(rows, d, device=dev, generator=torch.Generator(dev).manual_seed(  # noqa
            seed)) / d ** 0.5).to(DT[a.dtype])
        row = {"N": n, "V": v, "K": k, "D": d, "plain_catalog": v if a.plain == "whole" else hi - lo}
        if rank == 0:
            ee, cc = e.clone().requires_grad_(), shard_of(row["plain_catalog"], 7).requires_grad_()
            step = lambda: cce_minus_loss(ee, cc, t % cc.shape[0], num_negatives=k, seed=3).backward()  # noqa: E731
            plain = []
            for i in range(a.warmup + a.repeats):
                sync()
                t0 = time.perf_counter()
                step()
                sync()
                plain.append((time.perf_counter() - t0) * 1e3)
            row["plain_ms"] = statistics.median(plain[a.warmup:])
            del ee, cc
        dist.barrier()
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
        shard = shard_of(hi - lo, 11 + rank)
        master = opt = None
        if a.adam:  # fp32 weights, gradient and Adam's moments; the kernels read a copy in the bench's dtype
            master = torch.nn.Parameter(shard.float())
            opt = torch.optim.Adam([master], lr=1e-3, **({"fused": True} if dev.type == "cuda" else {}))
        parts = {"stats": [], "merge": [], "backward": [], "dE_allreduce": [], "step": []}
        src = None
        kernels = None
        if dev.type == "cuda":
            from ccekit_torch import _cuda

            src = _cuda.source_of(vocab=True)
            assert _cuda.available(dev), "the package's CUDA driver did not load"
            kernels = _vocab.CudaKernels(src)
        neg = (k, 3)
        ti = t.to(torch.int32).contiguous()
        for i in range(a.warmup + a.repeats):
            t_step = time.perf_counter()
            if kernels:
                stats, ms1 = timed(lambda: kernels.stats(e, shard, ti, neg, None, lo, v, -100), dev, sync)
            else:
                cands = _vocab._candidates(neg, n, v)
                stats, ms1 = timed(lambda: _vocab._torch_stats(e, shard, t, cands, None, lo, v, -100), dev, sync)
            merged, ms2 = timed(lambda: _vocab._merge([x.float() if x.is_floating_point() else x for x in stats],
                                                      dist.group.WORLD), dev, sync)
            lse, logk, share, loss, kk, live = merged
            rows = torch.where(live, torch.full_like(lse, 1.0 / max(1, int(live.sum()))), torch.zeros_like(lse))
            if kernels:
                (de, dc), ms3 = timed(lambda: kernels.grads(e, shard, ti, neg, None, lo, v, -100, lse, kk, share, rows),
                                      dev, sync)
            else:
                (de, dc), ms3 = timed(lambda: _vocab._torch_grads(e, shard, t, cands, None, lo, v, -100, lse, logk,
                                                                   share, rows), dev, sync)
            _, ms4 = timed(lambda: dist.all_reduce(de), dev, sync)
            if opt is not None:
                master.grad = dc.to(master.dtype)
                del dc
                opt.step()
                opt.zero_grad(set_to_none=True)
                shard = master.detach().to(DT[a.dtype])
            if i >= a.warmup:
                for key, ms in zip(("stats", "merge", "backward", "dE_allreduce"), (ms1, ms2, ms3, ms4)):
                    parts[key].append(ms)
                parts["step"].append((time.perf_counter() - t_step) * 1e3)
        row.update({f"{key}_ms": statistics.median(vals) for key, vals in parts.items()})
        peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else None
        peaks = [None] * world
        dist.all_gather_object(peaks, {"rank": rank, "rows": hi - lo, "peak_bytes": peak})
        row.update({"adam": a.adam, "ranks": peaks})
        results[name] = row
        del shard, e, master, opt
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    if rank == 0:
        card = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
        with open(os.path.join(out_dir, "r0.json"), "w") as f:
            json.dump({"card": card, "torch": torch.__version__, "world": world, "dtype": a.dtype, "backend": backend,
                       "gpus": torch.cuda.device_count() if dev.type == "cuda" else 0,
                       "results": results}, f)
    dist.barrier()
    dist.destroy_process_group()


def table(rep):
    where = (f"{rep['world']} GPUs ({rep['card']})" if rep.get("backend") == "nccl" else f"one {rep['card']}")
    lines = [f"Vocabulary-parallel CCE-, {rep['world']} ranks on {where} over {rep.get('backend', 'gloo')}, "
             f"{rep['dtype']}, "
             f"torch {rep['torch']}", "",
             "| setting | plain step ms (catalog) | stats kernel | exchange + merge | backward kernel | dE all-reduce | "
             "vocab step ms | merge / plain | vocab / plain | peak GiB a rank (largest) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in rep["results"].items():
        plain = r.get("plain_ms", math.nan)
        peaks = [x["peak_bytes"] for x in r.get("ranks") or [] if x.get("peak_bytes") is not None]
        peak = f"{max(peaks) / 2**30:.2f}" + (" with Adam" if r.get("adam") else "") if peaks else "-"
        lines.append(f"| {name} (N={r['N']} V={r['V']} K={r['K']} D={r['D']}) | {plain:.2f} "
                     f"({r.get('plain_catalog', r['V'])}) | {r['stats_ms']:.2f} | {r['merge_ms']:.2f} | "
                     f"{r['backward_ms']:.2f} | {r['dE_allreduce_ms']:.2f} | {r['step_ms']:.2f} | "
                     f"{r['merge_ms'] / plain:.1%} | {r['step_ms'] / plain:.2f}x | {peak} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    a = args_of(argv)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(rank_main, args=(a.world, port, a, tmp), nprocs=a.world, join=True)
        rep = json.load(open(os.path.join(tmp, "r0.json")))
    md = table(rep)
    print(md)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        json.dump(rep, open(os.path.join(a.out, "vocab_parallel.json"), "w"), indent=1)
        open(os.path.join(a.out, "vocab_parallel.md"), "w").write(md)


if __name__ == "__main__":
    main()
