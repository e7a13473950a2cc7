"""torch.distributed checks of ccekit_torch (torch.multiprocessing.spawn), one line a check:

    python3 torch_dist_check.py PKG_DIR vocab WORLD [DEVICE]   vocab-parallel loss and gradients vs one process
    python3 torch_dist_check.py PKG_DIR ddp WORLD [DEVICE]     DDP gradients vs one process on the whole batch
    python3 torch_dist_check.py PKG_DIR dead                   a rank that dies mid-step: an error, no hang

vocab: the table is cut into WORLD shards of unequal size; every rank computes cce_minus_loss(e, c_shard, targets,
process_group=...) and its gradients, compared with the single-process float64 loss on the whole table (the
package's PyTorch path) for index-tensor, item_probs and Philox negatives, mean / sum / none, ignored rows,
collisions and targets in every shard. DEVICE cuda puts the tensors on the GPUs: one a rank over NCCL where the
host has WORLD of them, else all on GPU 0 over gloo with CUDA tensors."""
import datetime
import os
import socket
import sys
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

PKG = sys.argv[1]
sys.path.insert(0, PKG)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
from gpu_common import rank_device  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init(rank, world, port, dev_name="cpu", timeout=60):
    """Joins the group; returns the rank's device (its own GPU over NCCL where the host has `world` GPUs, else GPU 0
    or the CPU over gloo: bench/gpu_common.py's rank_device)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dev, backend = rank_device(rank, world, dev_name)
    dist.init_process_group(backend, rank=rank, world_size=world, timeout=datetime.timedelta(seconds=timeout))
    return dev


def rel(a, b):
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30))


def problem(seed, n, d, v, k, dev):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(n, d, generator=g, dtype=torch.float64) / d ** 0.5 * 3
    c = torch.randn(v, d, generator=g, dtype=torch.float64) / d ** 0.5 * 3
    t = torch.randint(0, v, (n,), generator=g)
    t[torch.rand(n, generator=g) < 0.15] = -100
    neg = torch.randint(0, v, (n, k), generator=g)
    hit = (torch.rand(n, k, generator=g) < 0.1) & (t[:, None] >= 0)
    neg = torch.where(hit, t[:, None].expand(n, k), neg)  # collisions
    probs = torch.rand(v, generator=g, dtype=torch.float64) + 0.05
    return e.to(dev), c.to(dev), t.to(dev), neg.to(dev), probs.to(dev)


def finish(out_dir, name, rank, lines):
    """Writes this rank's lines for the parent to print, then leaves the group."""
    with open(os.path.join(out_dir, f"{name}-{rank}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    dist.barrier()
    dist.destroy_process_group()


def vocab_rank(rank, world, port, dev_name, out_dir):
    from ccekit_torch import cce_minus_loss

    dev = init(rank, world, port, dev_name)
    lines = []
    n, d, v, k = 61, 7, 53, 9
    cuts = torch.randperm(v - 1, generator=torch.Generator().manual_seed(5))[:world - 1].add(1)
    bounds = [0] + sorted(cuts.tolist()) + [v]
    a, b = bounds[rank], bounds[rank + 1]
    # On CUDA also float32 (the package's vocabShard kernels; the PyTorch path is made to raise meanwhile).
    dtypes = [torch.float64] + ([torch.float32] if dev.type == "cuda" else [])
    from ccekit_torch import _vocab

    cases = [("index tensor", {"neg": True}), ("item_probs draws", {"probs": True}), ("philox draws", {}),
             ("index tensor, item_probs q", {"neg": True, "probs": True})]
    for dtype, (case, kw), reduction in [(x, y, z) for x in dtypes for y in cases for z in ("mean", "sum", "none")]:
        e, c, t, neg, probs = problem(11 + len(lines), n, d, v, k, dev)
        e, c = e.to(dtype), c.to(dtype)
        extra = {"item_probs": probs} if kw.get("probs") else {}
        draw = {"negatives": neg} if kw.get("neg") else {"num_negatives": k, "seed": 1234}
        shard = c[a:b].clone().requires_grad_()
        e1 = e.clone().requires_grad_()
        real = _vocab._torch_stats
        if dtype != torch.float64:
            _vocab._torch_stats = lambda *x, **y: (_ for _ in ()).throw(AssertionError("PyTorch path on CUDA"))
        try:
            loss = cce_minus_loss(e1, shard, t, process_group=dist.group.WORLD, reduction=reduction, **draw,
                                  **extra)
        finally:
            _vocab._torch_stats = real
        up = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).to(dev) + 0.5
        (loss * up).sum().backward() if reduction == "none" else (loss * 1.7).backward()
        e2, c2 = e.double().requires_grad_(), c.double().requires_grad_()
        ref = cce_minus_loss(e2, c2, t, reduction=reduction, same_negatives_across_ranks=True, **draw, **extra)
        (ref * up).sum().backward() if reduction == "none" else (ref * 1.7).backward()
        errs = (rel(loss.detach(), ref.detach()), rel(e1.grad, e2.grad), rel(shard.grad, c2.grad[a:b]))
        ok = all(x < (1e-9 if dtype == torch.float64 else 1e-4) for x in errs)
        lines.append(f"{'ok  ' if ok else 'FAIL'} vocab {case} {reduction} {dtype} world {world} rank {rank} shard "
                     f"[{a}, {b}) loss/dE/dC rel {errs[0]:.1e} {errs[1]:.1e} {errs[2]:.1e}")
    finish(out_dir, "vocab", rank, lines)


class Net(torch.nn.Module):
    """A projection to the hidden states and an item table; the loss is computed in forward (DDP's reducer)."""

    def __init__(self, din, d, v):
        super().__init__()
        self.proj = torch.nn.Linear(din, d).double()
        self.items = torch.nn.Embedding(v, d).double()

    def forward(self, x, t, neg):
        from ccekit_torch import cce_minus_loss

        return cce_minus_loss(self.proj(x), self.items.weight, t, negatives=neg, reduction="sum")


def ddp_rank(rank, world, port, dev_name, out_dir):
    from ccekit_torch import cce_minus_loss

    dev = init(rank, world, port, dev_name)
    torch.manual_seed(0)
    n, d, v, k, din = 24, 6, 40, 7, 5
    model = Net(din, d, v).to(dev)
    single = Net(din, d, v).to(dev)
    single.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    g = torch.Generator().manual_seed(9)
    x = torch.randn(world * n, din, generator=g, dtype=torch.float64).to(dev)
    t = torch.randint(0, v, (world * n,), generator=g).to(dev)
    neg = torch.randint(0, v, (world * n, k), generator=g).to(dev)
    rows = slice(rank * n, (rank + 1) * n)
    ddp(x[rows], t[rows], neg[rows]).backward()
    single(x, t, neg).backward()
    # DDP averages the ranks' gradients: the single process's gradient of the summed loss over the world size.
    errs = [rel(p.grad, q.grad / world) for p, q in zip(model.parameters(), single.parameters())]
    lines = [f"{'ok  ' if max(errs) < 1e-10 else 'FAIL'} ddp world {world} rank {rank} grads rel {max(errs):.1e}"]
    # In-kernel draws on one shared batch: a different loss on each rank by default, the same when asked.
    e0, c0 = single.proj(x[:n]).detach(), single.items.weight.detach()
    for same in (False, True):
        lv = cce_minus_loss(e0, c0, t[:n], num_negatives=k, seed=5, same_negatives_across_ranks=same).reshape(1)
        allv = [torch.zeros_like(lv) for _ in range(world)]
        dist.all_gather(allv, lv)
        distinct = len({float(a) for a in allv})
        want = 1 if same else world
        lines.append(f"{'ok  ' if distinct == want else 'FAIL'} ddp draws same_negatives_across_ranks={same}: "
                     f"{distinct} distinct losses over {world} ranks rank {rank}")
    finish(out_dir, "ddp", rank, lines)


def dead_rank(rank, world, port, dev_name, out_dir):
    from ccekit_torch import cce_minus_loss

    init(rank, world, port, timeout=6)
    e, c, t, neg, _ = problem(3, 20, 4, 30, 5, torch.device("cpu"))
    stall = dev_name == "stall"
    if rank == 1:
        if stall:
            time.sleep(20)  # stalls past the group's timeout
        os._exit(0)  # dies before the step's collectives
    t0 = time.time()
    try:
        cce_minus_loss(e, c[:15], t, negatives=neg, process_group=dist.group.WORLD, vocab_start=0, num_items=30)
        msg = "FAIL dead rank: the step returned"
    except Exception as err:  # noqa: BLE001
        named = "rank 0 of 2" in str(err)
        msg = (f"{'ok  ' if named else 'FAIL'} {'stalled' if stall else 'dead'} rank: {type(err).__name__} after "
               f"{time.time() - t0:.1f} s: {str(err).splitlines()[0][:200]}")
    with open(os.path.join(out_dir, f"{'stall' if stall else 'dead'}-0.txt"), "w") as f:
        f.write(msg + "\n")
    os._exit(0)


if __name__ == "__main__":
    what = sys.argv[2]
    world = int(sys.argv[3]) if len(sys.argv) > 3 and what != "dead" else 2
    dev = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    fn = {"vocab": vocab_rank, "ddp": ddp_rank, "dead": dead_rank}[what]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(fn, args=(world, free_port(), dev, out), nprocs=world, join=True)
        for name in sorted(os.listdir(out)):
            sys.stdout.write(open(os.path.join(out, name)).read())
