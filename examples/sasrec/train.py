#!/usr/bin/env python3
"""Train SASRec with full CE, PyTorch CE-, BCE or ccekit's CCE- and evaluate by full-catalog ranking.

    python3 examples/sasrec/train.py --data ../shared/data/beauty.txt --loss ce-minus --negatives 256 \
        --epochs 50 --patience 5 --out runs/beauty-ce-minus.json
    python3 examples/sasrec/train.py --data ../shared/data/beauty.txt --loss cce-minus --negatives-mode mixed \
        --negatives 256 --objective masked --mask-prob 0.2
    python3 examples/sasrec/train.py --self-check [--ccekit-package out/torch]
    python3 examples/sasrec/train.py --data /tmp/syn-1m.txt --loss ce-minus --negatives 4096 --batch-size 512 \
        --memory-budget-gib 40 --time-steps --out runs/syn-ce-minus.json   # one run of grid.py's grid

--memory-budget-gib G caps this process's CUDA allocations at G GiB (torch.cuda.set_per_process_memory_fraction), so
a run that needs more fails as on a G-GiB card. Out of memory in training or evaluation stops the run; the report is
still written, with "status": "oom" and where it happened ("oom": epoch, step, message), and the exit code is 0.

See README.md next to this file for the data split, the model and the metrics.
"""

import argparse
import copy
import gc
import json
import math
import os
import platform
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from data import IGNORE_INDEX, SeqData, mask_batch  # noqa: E402
from losses import LOSSES, MODES, make_loss, self_check  # noqa: E402
from model import SASRec, make_adam  # noqa: E402

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="sequence file: `user item item ...` per line")
    p.add_argument("--max-users", type=int, default=None, help="use only the first N users of the file")
    p.add_argument("--loss", choices=LOSSES, default="ce-minus")
    p.add_argument("--negatives", type=int, default=256, help="K negatives per row (ce-minus, cce-minus)")
    p.add_argument("--ccekit-package", default="out/torch", help="folder holding ccekit_torch/ (cce-minus)")
    p.add_argument("--negatives-mode", choices=MODES, default="per-row",
                   help="cce-minus: per-row (K drawn per row), shared (K per group of --share-rows rows, default 128), "
                   "in-batch (the batch's targets), mixed (in-batch + K drawn)")
    p.add_argument("--share-rows", type=int, default=None,
                   help="cce-minus: negatives shared by groups of this many rows (16, 32, 64, 128); with in-batch: "
                   "the in-batch candidates are the targets of the row's group; with mixed: the draws' groups")
    p.add_argument("--in-batch-q", choices=("freq", "uniform"), default="freq",
                   help="in-batch / mixed: q of the in-batch candidates, the training targets' item frequency or "
                   "uniform")
    p.add_argument("--objective", choices=("next", "masked"), default="next",
                   help="next: causal next-item prediction; masked: BERT4Rec-style masked items, bidirectional")
    p.add_argument("--mask-prob", type=float, default=0.2, help="masked: fraction of items masked per sequence")
    p.add_argument("--shuffle-groups", action="store_true",
                   help="with --share-rows: group rows in a random order each step")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--maxlen", type=int, default=50)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=128, help="sequences per training step")
    p.add_argument("--eval-batch-size", type=int, default=1024, help="users per evaluation step")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda if available)")
    p.add_argument("--amp", choices=list(AMP_DTYPES), default="off", help="autocast dtype on CUDA")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (torch >= 2)")
    p.add_argument("--eval-every", type=int, default=1, help="validate every N epochs (and after the last)")
    p.add_argument("--patience", type=int, default=None, help="stop after N validations without a better NDCG@10")
    p.add_argument("--out", default=None, help="write a JSON report here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--self-check", action="store_true", help="check the losses on tiny batches and exit")
    p.add_argument("--memory-budget-gib", type=float, default=None,
                   help="CUDA: cap this process's allocations at G GiB (set_per_process_memory_fraction), as on a "
                   "G-GiB card; a run that needs more stops with status oom. Not enforced on the CPU")
    p.add_argument("--time-steps", action="store_true",
                   help="synchronize after every training step and report per-step times (step_ms: median, p90 "
                   "over the steps after the run's first 10)")
    p.add_argument("--adam", choices=("auto", "fused", "foreach"), default="auto",
                   help="Adam implementation: fused (CUDA, where this torch has it), foreach, or auto (fused on "
                   "CUDA where available, else torch's default)")
    args = p.parse_args(argv)
    if not args.self_check and not args.data:
        p.error("--data is required")
    if args.negatives < 1:
        p.error("--negatives must be >= 1")
    if args.eval_every < 1:
        p.error("--eval-every must be >= 1")
    if not 0 < args.mask_prob <= 1:
        p.error("--mask-prob must be in (0, 1]")
    if args.memory_budget_gib is not None and not args.memory_budget_gib > 0:
        p.error(f"--memory-budget-gib must be > 0, got {args.memory_budget_gib:g}")
    return args


class Progress:
    """A one-line progress bar on stderr, redrawn at most 10 times a second; silent when stderr is no tty."""

    def __init__(self, total, label, enabled=True):
        self.total, self.label, self.n = total, label, 0
        self.enabled = enabled and sys.stderr.isatty()
        self.start = self.last = time.perf_counter()
        self.postfix = ""

    def update(self, n=1, postfix=None):
        self.n += n
        if postfix is not None:
            self.postfix = postfix
        now = time.perf_counter()
        if self.enabled and (now - self.last >= 0.1 or self.n >= self.total):
            self.last = now
            frac = self.n / max(1, self.total)
            bar = "#" * int(frac * 24)
            rate = self.n / max(1e-9, now - self.start)
            sys.stderr.write(f"\r{self.label} [{bar:<24}] {self.n}/{self.total} {rate:.1f} it/s {self.postfix}\x1b[K")
            sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_ctx(device, amp_dtype):
    if amp_dtype is None:
        return torch.autocast(device_type="cpu", enabled=False)
    return torch.autocast(device_type="cuda", dtype=amp_dtype)


def make_scaler(enabled):
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        try:
            return torch.amp.GradScaler("cuda", enabled=enabled)
        except TypeError:
            pass
    return torch.cuda.amp.GradScaler(enabled=enabled)


@torch.no_grad()
def evaluate(model, evalset, device, amp_dtype, batch_size, k=10, mask_id=None):
    """Full-catalog ranking: for every user score all items with the last hidden state, set the items of the
    user's input history to -inf (the target's own score is kept for comparison), rank = number of items
    with a strictly higher score than the target. NDCG@k = 1/log2(rank+2) if rank < k, HR@k = [rank < k].
    mask_id (the masked objective): the mask token is appended to the input (its oldest item drops out of the
    window) and the bidirectional encoder's hidden state at it scores the catalog."""
    model.eval()
    C = model.catalog().float()  # [V, D]
    ndcg, hr, n = 0.0, 0.0, len(evalset)
    for a in range(0, n, batch_size):
        b = min(n, a + batch_size)
        ids = evalset.inputs[a:b].to(device, non_blocking=True)
        if mask_id is not None:
            ids = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], mask_id)], 1)
        with autocast_ctx(device, amp_dtype):
            h = model(ids, causal=mask_id is None)[:, -1, :]
        scores = h.float() @ C.t()  # [B, V]; column t-1 is item t
        rows = torch.arange(b - a, device=device)
        tgt = evalset.targets[a:b].to(device) - 1
        target_score = scores[rows, tgt].clone()
        lo, hi = evalset.seen_offsets[a], evalset.seen_offsets[b]
        seen_r = evalset.seen_rows[lo:hi].to(device) - a
        seen_c = evalset.seen_items[lo:hi].to(device) - 1
        scores[seen_r, seen_c] = float("-inf")
        rank = (scores > target_score[:, None]).sum(1)
        hit = rank < k
        ndcg += float((hit.double() / torch.log2(rank.double() + 2.0)).sum())
        hr += float(hit.double().sum())
    return {f"ndcg@{k}": ndcg / max(1, n), f"hr@{k}": hr / max(1, n), "users": n}


def dist_rank():
    """(rank, world size) under torchrun (torch.distributed initialized), else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def init_distributed(args):
    """Under torchrun (WORLD_SIZE > 1): NCCL on GPUs (one a process, LOCAL_RANK), gloo on CPUs; returns the device."""
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            return torch.device("cuda", torch.cuda.current_device())
    return torch.device(args.device or ("cuda" if cuda else "cpu"))


def is_oom(exc):
    """Whether an exception is a CUDA out-of-memory error (torch's own, or a kernel launch's error text)."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "out_of_memory" in text)


def percentile(xs, q):
    """The q-th percentile of xs (0 <= q <= 100), linear between the closest ranks (numpy's default)."""
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def step_summary(step_ms, warmup=10):
    """Median and p90 of per-step times (ms) over the steps after the first `warmup` (all of them if no more)."""
    use = step_ms[warmup:] if len(step_ms) > warmup else list(step_ms)
    if not use:
        return None
    return {"median": percentile(use, 50), "p90": percentile(use, 90), "steps": len(use)}


def apply_memory_budget(args, device):
    """--memory-budget-gib: cap the CUDA caching allocator of this process; a note on the CPU."""
    g = args.memory_budget_gib
    if g is None:
        return
    if device.type != "cuda":
        print(f"train.py: --memory-budget-gib {g:g} is not enforced on {device} (CUDA only)", file=sys.stderr)
        return
    total = torch.cuda.get_device_properties(device).total_memory
    if g * 2**30 > total:
        raise SystemExit(f"train.py: --memory-budget-gib {g:g} exceeds the card's {total / 2**30:.1f} GiB "
                         f"({torch.cuda.get_device_name(device)})")
    index = device.index if device.index is not None else torch.cuda.current_device()
    torch.cuda.set_per_process_memory_fraction(g * 2**30 / total, index)


def train_epoch(model, raw_model, data, loss_fn, opt, scaler, device, amp_dtype, args, epoch, where=None,
                step_ms=None):
    """One epoch; returns the mean loss. where (a dict): its "step" is kept at the running step (from 1), for an
    out-of-memory report, and its "rows" list gets each step's loss rows. step_ms (a list): each step's wall time in
    ms is appended, synchronized."""
    model.train()
    masked = args.objective == "masked"
    inputs, targets = (data.train_sequences, None) if masked else (data.train_inputs, data.train_targets)
    U = inputs.shape[0]
    perm = torch.randperm(U)  # the same on every rank (one seed): rank r takes batches r, r + P, ...
    rank, world = dist_rank()
    steps = math.ceil(U / args.batch_size) // world if world > 1 else math.ceil(U / args.batch_size)
    bar = Progress(steps, f"epoch {epoch}", enabled=not args.no_progress)
    total, count = torch.zeros((), device=device, dtype=torch.float64), 0
    if step_ms is not None:
        sync(device)
    for s in range(steps):
        if where is not None:
            where["step"] = s + 1
        t_step = time.perf_counter() if step_ms is not None else None
        b = s * world + rank
        idx = perm[b * args.batch_size : (b + 1) * args.batch_size]
        ids = inputs[idx].to(device, non_blocking=True)
        # The last step's gradients go before the forward, not after it: held through the forward they would add
        # 4 bytes a parameter to the step's peak (the planner's phases assume this order, as calibrate.py runs it).
        opt.zero_grad(set_to_none=True)
        # C = item_emb.weight[1:V+1] is taken after the model's forward: autograd runs later nodes first, so the
        # slice's backward then turns the loss's dC into the table's gradient before the model's backward, instead of
        # holding it through that.
        with autocast_ctx(device, amp_dtype):
            if masked:
                # BERT4Rec-style: masked items predicted from a bidirectional pass; the loss rows are the masked
                # positions of the flattened hidden states (positions=, no [M, D] gather for cce-minus).
                ids, pos, t = mask_batch(ids, args.mask_prob, raw_model.mask_id)
                if where is not None:
                    where.setdefault("rows", []).append(int(pos.numel()))
                H = model(ids, causal=False)  # [B, L, D]
                loss = loss_fn(H.reshape(-1, H.shape[-1]), raw_model.catalog(), t, positions=pos)
            else:
                tg_cpu = targets[idx]
                if where is not None:
                    where.setdefault("rows", []).append(int((tg_cpu != IGNORE_INDEX).sum()))
                tg = tg_cpu.to(device, non_blocking=True)
                H = model(ids)  # [B, L, D]
                mask = tg != IGNORE_INDEX
                E = H[mask]  # [N, D] hidden states of the non-padding positions
                t = tg[mask]  # [N] rows of C: item id - 1
                loss = loss_fn(E, raw_model.catalog(), t)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if step_ms is not None:
            sync(device)
            step_ms.append((time.perf_counter() - t_step) * 1e3)
        total += loss.detach().double()
        count += 1
        if not bar.enabled:
            continue
        bar.update(1, postfix=f"loss {float(loss):.4f}" if s % 20 == 0 else None)
    bar.close()
    return float(total) / max(1, count)


def step_order_check():
    """train_epoch's order on a tiny model (the planner's phases and calibrate.py assume it): no gradient is held
    through the forward, and the loss's dC reaches the catalog slice before the model's backward starts."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    model = SASRec(30, 8, 1, 1, 6, 0.0)
    opt = torch.optim.Adam(model.parameters())
    seqs = torch.randint(1, 31, (4, 7))
    data = SimpleNamespace(train_inputs=seqs[:, :-1], train_targets=seqs[:, 1:] - 1)
    args = SimpleNamespace(objective="next", batch_size=2, no_progress=True)
    events = []

    def loss_fn(e, c, t):
        events.append("forward" if model.item_emb.weight.grad is None else "forward with gradients held")
        e.register_hook(lambda g: events.append("dE"))
        c.register_hook(lambda g: events.append("dC"))
        return (e @ c.t()).logsumexp(1).mean() - (e * c[t]).sum(1).mean()

    train_epoch(model, model, data, loss_fn, opt, make_scaler(False), torch.device("cpu"), None, args, 1)
    ok = events == ["forward", "dC", "dE"] * 2
    return f"train step order (gradients cleared before the forward, dC before the model's backward): {events} " + \
        ("ok" if ok else "FAIL")


def main(argv=None):
    args = parse_args(argv)
    if args.self_check:
        for line in self_check(args.ccekit_package) + [step_order_check()]:
            print(line)
            if line.endswith("FAIL"):
                return 1
        print("self-check ok")
        return 0

    t_start = time.perf_counter()
    device = init_distributed(args)
    rank, world = dist_rank()
    if rank:
        sys.stdout = open(os.devnull, "w")  # one report: rank 0's
    amp_dtype = AMP_DTYPES[args.amp]
    if amp_dtype is not None and device.type != "cuda":
        print(f"train.py: --amp {args.amp} applies on CUDA only; running in float32 on {device}", file=sys.stderr)
        amp_dtype = None
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    data = SeqData(args.data, args.maxlen, args.max_users)
    V = data.num_items
    summary = data.summary(args.objective)
    print(
        f"data {args.data}: {summary['users']} users, {V} items, {summary['train_positions']} training positions, "
        f"{summary['eval_users']} eval users ({summary['short_users_train_only']} with < 3 items train only)"
    )

    apply_memory_budget(args, device)
    masked = args.objective == "masked"
    raw_model = SASRec(V, args.hidden, args.blocks, args.heads, args.maxlen, args.dropout, mask_token=masked).to(device)
    model = raw_model
    if world > 1:
        # DDP averages the gradients of the ranks' batches; cce_minus_loss draws different negatives on each rank.
        ids = [device] if device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(raw_model, device_ids=ids)
    if args.compile:
        if hasattr(torch, "compile"):
            model = torch.compile(raw_model)
        else:
            print("train.py: --compile needs torch >= 2; running eagerly", file=sys.stderr)
    if args.share_rows is not None and args.loss != "cce-minus":
        raise SystemExit("train.py: --share-rows applies to --loss cce-minus")
    if args.negatives_mode != "per-row" and args.loss != "cce-minus":
        raise SystemExit(f"train.py: --negatives-mode {args.negatives_mode} applies to --loss cce-minus "
                         "(ce-minus is the plain-PyTorch baseline of per-row)")
    in_batch_probs = None
    if args.negatives_mode in ("in-batch", "mixed") and args.in_batch_q == "freq":
        in_batch_probs = data.target_counts(args.objective).to(device)
    loss_fn = make_loss(args.loss, V, args.negatives, args.ccekit_package, amp_dtype, args.share_rows,
                        args.shuffle_groups,
                        args.negatives_mode, in_batch_probs)
    mask_id = raw_model.mask_id
    opt, adam = make_adam(raw_model.parameters(), args.adam, device, args.lr, (0.9, 0.98))
    scaler = make_scaler(amp_dtype == torch.float16)

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu")
    records, best, best_state, bad = [], None, None, 0
    # Where the run is (for an out-of-memory report), and the per-step times of --time-steps.
    where = {"epoch": 0, "step": None, "phase": "train"}
    step_ms = [] if args.time_steps else None
    oom = None
    try:
        for epoch in range(1, args.epochs + 1):
            where.update(epoch=epoch, step=None, phase="train")
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            sync(device)
            t0 = time.perf_counter()
            mean_loss = train_epoch(model, raw_model, data, loss_fn, opt, scaler, device, amp_dtype, args, epoch,
                                    where, step_ms)
            sync(device)
            epoch_s = time.perf_counter() - t0
            peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            rec = {"epoch": epoch, "time_s": epoch_s, "peak_mem_mib": peak, "loss": mean_loss}
            if epoch % args.eval_every == 0 or epoch == args.epochs:
                where.update(step=None, phase="eval")
                t1 = time.perf_counter()
                val = evaluate(raw_model, data.val, device, amp_dtype, args.eval_batch_size, mask_id=mask_id)
                rec.update({"val_ndcg@10": val["ndcg@10"], "val_hr@10": val["hr@10"],
                            "eval_time_s": time.perf_counter() - t1})
                if best is None or val["ndcg@10"] > best["val_ndcg@10"]:
                    best, bad = rec, 0
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in raw_model.state_dict().items()})
                else:
                    bad += 1
            records.append(rec)
            mem = f" peak {peak:.0f} MiB" if peak is not None else ""
            val_s = (f" val NDCG@10 {rec['val_ndcg@10']:.4f} HR@10 {rec['val_hr@10']:.4f}"
                     if "val_ndcg@10" in rec else "")
            print(f"epoch {epoch}: loss {mean_loss:.4f} train {epoch_s:.2f}s{mem}{val_s}", flush=True)
            if not math.isfinite(mean_loss):
                print("train.py: the training loss is not finite; stopping", file=sys.stderr)
                break
            stop = args.patience is not None and bad >= args.patience
            if world > 1:  # every rank evaluates the same synchronized model; rank 0 decides for all
                flag = torch.tensor([int(stop)], device=device if device.type == "cuda" else "cpu")
                torch.distributed.broadcast(flag, 0)
                stop = bool(flag.item())
            if stop:
                print(f"early stop: no better val NDCG@10 for {bad} validations")
                break
    except RuntimeError as exc:
        if not is_oom(exc):
            raise
        oom = {"epoch": where["epoch"], "step": where["step"], "phase": where["phase"],
               "message": (str(exc).strip().splitlines() or [type(exc).__name__])[0]}
    if oom is not None:
        # The exception (and with it the failed step's frames and tensors) is gone here; free the rest.
        if device.type == "cuda":
            oom["peak_mem_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        del model, opt, loss_fn, scaler
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        step_s = f" step {oom['step']}" if oom["step"] is not None else f" ({oom['phase']})"
        print(f"train.py: out of memory in epoch {oom['epoch']}{step_s}: {oom['message']}; stopping, the report "
              "gets status oom", file=sys.stderr, flush=True)

    test = None
    if best_state is not None and oom is None:
        raw_model.load_state_dict(best_state)
        try:
            test = evaluate(raw_model, data.test, device, amp_dtype, args.eval_batch_size, mask_id=mask_id)
        except RuntimeError as exc:
            if not is_oom(exc):
                raise
            oom = {"epoch": best["epoch"], "step": None, "phase": "test",
                   "message": (str(exc).strip().splitlines() or [type(exc).__name__])[0]}
        if test is not None:
            print(
                f"best epoch {best['epoch']}: val NDCG@10 {best['val_ndcg@10']:.4f}; "
                f"test NDCG@10 {test['ndcg@10']:.4f} HR@10 {test['hr@10']:.4f}"
            )
        else:
            print(f"train.py: out of memory in the test evaluation: {oom['message']}", file=sys.stderr, flush=True)
    total_s = time.perf_counter() - t_start
    if world > 1:
        torch.distributed.destroy_process_group()
    if args.out and rank == 0:
        peaks = [r["peak_mem_mib"] for r in records if r["peak_mem_mib"] is not None]
        if oom is not None and oom.get("peak_mem_mib") is not None:
            peaks.append(oom["peak_mem_mib"])
        report = {
            "status": "oom" if oom is not None else "ok",
            "oom": oom,
            "args": vars(args),
            "data": summary,
            "epochs": records,
            "best_epoch": best["epoch"] if best else None,
            "best_val": {"ndcg@10": best["val_ndcg@10"], "hr@10": best["val_hr@10"]} if best else None,
            "test": test,
            "device": str(device),
            "device_name": device_name,
            "amp": args.amp if amp_dtype is not None else "off",
            "adam": adam,
            "memory_budget_gib": args.memory_budget_gib,
            "peak_mem_mib": max(peaks) if peaks else None,
            "step_ms": step_summary(step_ms) if step_ms is not None else None,
            # Loss rows a step: the busiest step sets the peak memory, the mean the time (ccekit plan's fill).
            "rows_per_step": ({"mean": sum(where["rows"]) / len(where["rows"]), "max": max(where["rows"]),
                               "steps": len(where["rows"])} if where.get("rows") else None),
            "torch_version": torch.__version__,
            "cuda_version": torch.version.cuda,
            "python_version": platform.python_version(),
            "total_time_s": total_s,
            "world_size": world,
        }
        d = os.path.dirname(os.path.abspath(args.out))
        os.makedirs(d, exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
