"""The candidate sources of the emitted ccekit_torch package's PyTorch path (test/torch-sources.test.ts): in-batch
(batch and group), mixed (in-batch plus drawn), positions, against a float64 loop written here; the argument
errors; a statistical check of the mixed estimator. Fresh random inputs each run (the seed is printed).
Prints one line per check ('ok NAME' or 'FAIL NAME: why') and 'P passed, F failed'.
Usage: python3 torch_sources_check.py PKG_DIR [SEED]"""
import math
import sys
import time
import traceback

import torch

sys.path.insert(0, sys.argv[1])
from ccekit_torch import _reference, cce_minus_loss, loss as _loss  # noqa: E402

SEED = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time() * 1000) % 2**31
torch.manual_seed(SEED)
IGN = -100
results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append(name)
            print(f"ok   {name}", flush=True)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then counted
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            traceback.print_exc(file=sys.stdout)
            results.append(None)
        return fn
    return wrap


# ---------------------------------------------------------------------------------------------------------
# The float64 loop: the contract, one row at a time, from explicit candidate lists.

def loop_loss(e, c, targets, cand_lists, reduction):
    """e [M, D] (rows of the loss), c [V, D] float64 leaves; cand_lists[m]: [(item, log q)] of all parts of row m
    (before rejection). Returns the reduced loss (autograd gives dE, dC)."""
    v = c.shape[0]
    rows = []
    for m in range(e.shape[0]):
        t = int(targets[m])
        if t == IGN:
            rows.append(torch.zeros((), dtype=torch.float64))
            continue
        acc = [(n, lq) for n, lq in cand_lists[m] if n != t]
        s0 = e[m] @ c[t]
        logits = [s0]
        for n, lq in acc:
            logits.append(e[m] @ c[n] - math.log(len(acc)) - lq)
        rows.append(torch.logsumexp(torch.stack(logits), 0) - s0)
    loss = torch.stack(rows)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    live = sum(1 for t in targets.tolist() if t != IGN)
    return loss.sum() / max(live, 1)


def log_q(probs, v):
    """log q per item: normalized probabilities, or the uniform 1/(V-1) when None."""
    if probs is None:
        return [-math.log(v - 1)] * v
    p = probs.double()
    return (p / p.sum()).log().tolist()


def candidates(targets, v, mode=None, share=None, drawn=None, drawn_probs=None, ib_probs=None):
    """[(item, log q)] per row: in-batch (mode 'batch' or 'group' of share rows), then drawn (a [rows, K] or
    [groups, K] tensor)."""
    m = len(targets)
    t = targets.tolist()
    lq_d, lq_b = log_q(drawn_probs, v), log_q(ib_probs, v)
    out = []
    for i in range(m):
        cs = []
        if mode == "batch":
            cs += [(x, lq_b[x]) for x in t if x != IGN]
        elif mode == "group":
            g = i // share
            cs += [(x, lq_b[x]) for x in t[g * share:(g + 1) * share] if x != IGN]
        if drawn is not None:
            row = drawn[i // share if share else i].tolist()
            cs += [(x, lq_d[x]) for x in row]
        out.append(cs)
    return out


def targets_with(n, v, ignored=0.2, dup_range=None):
    t = torch.randint(0, dup_range or v, (n,))
    t[torch.rand(n) < ignored] = IGN
    if int((t != IGN).sum()) == 0:
        t[0] = 1
    return t


def compare(name, got, want, tol):
    err = (got.double() - want.double()).abs().max().item() if got.numel() else 0.0
    scale = max(1.0, want.double().abs().max().item() if want.numel() else 1.0)
    assert err <= tol * scale, f"{name}: max |diff| {err:.3g} > {tol:.1g} * {scale:.3g}"


def run_case(kind, n, d, v, *, reduction, call, cand, n_e=None, positions=None, dtype=torch.float64, tol=1e-10):
    """call(e, c) -> the package's loss; cand: the candidate lists of the loop. Compares the loss and, under a
    random upstream gradient, dE and dC."""
    n_e = n_e or n
    e0 = torch.randn(n_e, d, dtype=torch.float64)
    c0 = torch.randn(v, d, dtype=torch.float64) * 0.7
    e = e0.to(dtype).clone().requires_grad_()
    c = c0.to(dtype).clone().requires_grad_()
    got = call(e, c)
    ew, cw = e0.clone().requires_grad_(), c0.clone().requires_grad_()
    rows_e = ew if positions is None else ew[positions]
    want = loop_loss(rows_e, cw, cand["targets"], cand["lists"], reduction)
    compare(f"{kind} loss", got.detach(), want.detach(), tol)
    up = torch.rand(want.shape, dtype=torch.float64) + 0.5
    (got * up.to(got.dtype)).sum().backward()
    (want * up).sum().backward()
    compare(f"{kind} dE", e.grad, ew.grad, tol)
    compare(f"{kind} dC", c.grad, cw.grad, tol)
    assert e.grad.dtype == dtype and c.grad.dtype == dtype
    return e, ew


SIZES = [(37, 5, 23), (19, 3, 11), (53, 7, 41)]


@check("in-batch, every reduction, float64 and float32, duplicates of targets and ignored rows")
def _():
    for (n, d, v), red in zip(SIZES, ("mean", "sum", "none")):
        for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 2e-5)):
            t = targets_with(n, v, dup_range=5)  # many duplicates of each target among the candidates
            lists = candidates(t, v, "batch")
            e, _ = run_case("in-batch", n, d, v, reduction=red, dtype=dtype, tol=tol,
                            call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch", reduction=red),
                            cand={"targets": t, "lists": lists})
            dead = t == IGN
            assert float(e.grad[dead].abs().sum()) == 0.0, "ignored rows have a gradient"


@check("in-batch-group with share_rows (16, 32), last group partial, in_batch_probs")
def _():
    for (n, d, v), share, red in ((SIZES[0], 16, "mean"), (SIZES[2], 32, "none"), ((70, 4, 29), 16, "sum")):
        t = targets_with(n, v, dup_range=v // 2)
        probs = torch.rand(v, dtype=torch.float64) + 0.05
        lists = candidates(t, v, "group", share, ib_probs=probs)
        run_case("group", n, d, v, reduction=red,
                 call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch-group", share_rows=share,
                                                  in_batch_probs=probs, reduction=red),
                 cand={"targets": t, "lists": lists})


@check("in-batch with in_batch_probs (float32 probabilities)")
def _():
    n, d, v = 29, 6, 31
    t = targets_with(n, v)
    probs = torch.rand(v) * 3 + 0.01
    lists = candidates(t, v, "batch", ib_probs=probs)
    run_case("in-batch probs", n, d, v, reduction="mean",
             call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=probs),
             cand={"targets": t, "lists": lists})


def drawn_uniform(rows, k, v, seed, share):
    # The package's draws (its Philox sampler is checked against the kernels' in torch-package.test.ts).
    return _reference.philox_uniform(rows, k, v, seed, torch.device("cpu"), stream=1 if share else 0)


def drawn_probs(rows, k, v, probs, seed):
    return _loss._draw(rows, k, v, probs, torch.device("cpu"), seed)


@check("mixed: in-batch + K uniform drawn per row, every reduction; a new seed draws anew")
def _():
    for (n, d, v), red in zip(SIZES, ("mean", "sum", "none")):
        k, seed = 7, int(torch.randint(0, 2**40, ()))
        t = targets_with(n, v, dup_range=v // 3)
        lists = candidates(t, v, "batch", drawn=drawn_uniform(n, k, v, seed, None))
        run_case("mixed uniform", n, d, v, reduction=red,
                 call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=k, seed=seed,
                                                  reduction=red),
                 cand={"targets": t, "lists": lists})
    e, c = torch.randn(n, d), torch.randn(v, d)
    a = cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=k, seed=seed)
    b = cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=k, seed=seed)
    z = cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=k, seed=seed + 1)
    assert float(a) == float(b) and float(a) != float(z), (float(a), float(b), float(z))


@check("mixed: in-batch + drawn from item_probs, with in_batch_probs; in-batch-group + shared drawn")
def _():
    n, d, v = 41, 5, 37
    k, seed = 9, int(torch.randint(0, 2**40, ()))
    t = targets_with(n, v)
    ip = torch.rand(v, dtype=torch.float64) + 0.02
    bp = torch.rand(v, dtype=torch.float64) + 0.02
    lists = candidates(t, v, "batch", drawn=drawn_probs(n, k, v, ip, seed), drawn_probs=ip, ib_probs=bp)
    run_case("mixed probs", n, d, v, reduction="mean",
             call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=k, seed=seed,
                                              item_probs=ip, in_batch_probs=bp),
             cand={"targets": t, "lists": lists})
    g = -(-n // 16)
    lists = candidates(t, v, "group", 16, drawn=drawn_uniform(g, k, v, seed, 16), ib_probs=bp)
    run_case("mixed group", n, d, v, reduction="sum", dtype=torch.float32, tol=2e-5,
             call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch-group", share_rows=16, num_negatives=k,
                                              seed=seed, in_batch_probs=bp, reduction="sum"),
             cand={"targets": t, "lists": lists})
    lists = candidates(t, v, "batch", 16, drawn=drawn_probs(g, k, v, ip, seed), drawn_probs=ip)
    run_case("mixed batch, shared drawn", n, d, v, reduction="none",
             call=lambda e, c: cce_minus_loss(e, c, t, negatives="in-batch", share_rows=16, num_negatives=k,
                                              seed=seed, item_probs=ip, reduction="none"),
             cand={"targets": t, "lists": lists})


@check("positions: given negatives, drawn, in-batch, mixed; dE zero on rows not listed")
def _():
    n_e, m, d, v, k = 45, 23, 5, 31, 6
    pos = torch.randperm(n_e)[:m]
    t = targets_with(m, v)
    neg = torch.randint(0, v, (m, k))
    seed = int(torch.randint(0, 2**40, ()))
    cases = [
        ("given", dict(negatives=neg), candidates(t, v, drawn=neg)),
        ("drawn", dict(num_negatives=k, seed=seed), candidates(t, v, drawn=drawn_uniform(m, k, v, seed, None))),
        ("in-batch", dict(negatives="in-batch"), candidates(t, v, "batch")),
        ("mixed", dict(negatives="in-batch", num_negatives=k, seed=seed),
         candidates(t, v, "batch", drawn=drawn_uniform(m, k, v, seed, None))),
    ]
    for (label, kw, lists), red in zip(cases, ("mean", "sum", "none", "mean")):
        for p in (pos, pos.to(torch.int32)):
            e, ew = run_case(f"positions {label}", m, d, v, n_e=n_e, positions=pos, reduction=red,
                             call=lambda e, c: cce_minus_loss(e, c, t, positions=p, reduction=red, **kw),
                             cand={"targets": t, "lists": lists})
            unlisted = torch.ones(n_e, dtype=torch.bool)
            unlisted[pos] = False
            assert float(e.grad[unlisted].abs().sum()) == 0.0, "dE on a row not in positions"
            live_rows = pos[t != IGN]
            assert bool((e.grad[live_rows].abs().sum(1) > 0).all()), "a listed live row has no dE"


@check("a row whose candidates are all its own target: loss 0; all targets ignored: mean 0")
def _():
    v, d = 9, 3
    t = torch.tensor([4, 4, 4, IGN, 4])
    e, c = torch.randn(5, d, dtype=torch.float64), torch.randn(v, d, dtype=torch.float64)
    rows = cce_minus_loss(e, c, t, negatives="in-batch", reduction="none")
    assert rows.abs().max().item() == 0.0, rows
    tt = torch.full((5,), IGN)
    assert float(cce_minus_loss(e, c, tt, negatives="in-batch")) == 0.0


def bad_cases():
    n, d, v = 9, 4, 17
    e, c = torch.randn(n, d), torch.randn(v, d)
    t = torch.randint(0, v, (n,))
    pr = torch.rand(v)
    yield "negatives", lambda: cce_minus_loss(e, c, t, negatives="in_batch")
    yield "negatives", lambda: cce_minus_loss(e, c, t, negatives="")
    yield "share_rows", lambda: cce_minus_loss(e, c, t, negatives="in-batch-group")
    yield "share_rows", lambda: cce_minus_loss(e, c, t, negatives="in-batch-group", share_rows=7)
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, num_negatives=3, in_batch_probs=pr)
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives=t[:, None], in_batch_probs=pr)
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=pr[:-1])
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=pr[None])
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=torch.ones(v).long())
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=pr - 2)
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=pr * 0)
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=pr.tolist())
    zero_t = pr.clone()
    zero_t[t[2]] = 0
    yield "in_batch_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", in_batch_probs=zero_t)
    yield "item_probs", lambda: cce_minus_loss(e, c, t, negatives="in-batch", item_probs=pr)
    yield "seed", lambda: cce_minus_loss(e, c, t, negatives="in-batch", seed=3)
    yield "num_negatives", lambda: cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=0)
    big = torch.randn(20, d)
    p = torch.randperm(20)[:n]
    yield "positions", lambda: cce_minus_loss(big, c, t, negatives="in-batch", positions=p.float())
    yield "positions", lambda: cce_minus_loss(big, c, t, negatives="in-batch", positions=p[:, None])
    yield "positions", lambda: cce_minus_loss(big, c, t, negatives="in-batch", positions=p[:-1])
    yield "positions", lambda: cce_minus_loss(big, c, t, num_negatives=2, positions=torch.cat([p[:-1], p[:1]]))
    yield "positions", lambda: cce_minus_loss(big, c, t, num_negatives=2, positions=torch.cat([p[:-1], p.new([20])]))
    yield "positions", lambda: cce_minus_loss(big, c, t, num_negatives=2, positions=torch.cat([p[:-1], p.new([-1])]))
    yield "positions", lambda: cce_minus_loss(big, c, t, num_negatives=2, positions=p.tolist())
    yield "targets", lambda: cce_minus_loss(big, c, t[:, None], num_negatives=2, positions=p)
    yield "negatives", lambda: cce_minus_loss(big, c, t, negatives=torch.randint(0, v, (20, 3)), positions=p)


@check("bad input: one ValueError naming the argument")
def _():
    bad = []
    for arg, call in bad_cases():
        try:
            call()
            bad.append(f"{arg}: no error")
        except ValueError as exc:
            if not str(exc).startswith(f"{arg}: "):
                bad.append(f"{arg}: got {exc}")
    assert not bad, "; ".join(bad)


@check("statistics: mixed estimator's exp(lse) - exp(s0) averages to the full softmax's sum over n != t")
def _():
    # V = 20, D = 4; rows' targets i.i.d. from p (the in-batch part), K uniform drawn per row. For row i with
    # target t, given the accepted counts k_d (drawn) and k_b (in-batch), E[Z_hat] = Z (k_d + k_b / (1 - p_t)) / k;
    # k = 0 gives Z_hat = 0. The ratio Z_hat / (Z f(t)), f the expectation of that factor over the binomial
    # counts, has mean 1.
    g = torch.Generator().manual_seed(20240601)
    v, d, b, k, trials = 20, 4, 10, 5, 1500
    p = torch.rand(v, generator=g, dtype=torch.float64) + 0.1
    p = p / p.sum()
    e = torch.randn(b, d, generator=g, dtype=torch.float64) * 0.6
    c = torch.randn(v, d, generator=g, dtype=torch.float64) * 0.6
    ex = torch.exp(e @ c.t())  # [B, V]

    def binom(nn, q):
        return [math.comb(nn, j) * q**j * (1 - q) ** (nn - j) for j in range(nn + 1)]

    def factor(pt):
        fd, fb = binom(k, (v - 1) / v), binom(b - 1, 1 - pt)
        return sum(a * bb * (kd + kb / (1 - pt)) / (kd + kb) for kd, a in enumerate(fd)
                   for kb, bb in enumerate(fb) if kd + kb)

    fac = [factor(float(p[i])) for i in range(v)]
    ratios, naive = [], []
    for trial in range(trials):
        t = torch.multinomial(p, b, replacement=True, generator=g)
        rows = cce_minus_loss(e, c, t, negatives="in-batch", num_negatives=k, in_batch_probs=p, seed=trial,
                              reduction="none")
        s0 = (e * c[t]).sum(1)
        zhat = torch.exp(rows + s0) - torch.exp(s0)
        z = ex.sum(1) - ex[torch.arange(b), t]
        f = torch.tensor([fac[i] for i in t.tolist()], dtype=torch.float64)
        ratios.append(float((zhat / (z * f)).mean()))
        naive.append(float((zhat / z).mean()))
    r = torch.tensor(ratios, dtype=torch.float64)
    mean, se = float(r.mean()), float(r.std() / math.sqrt(trials))
    assert se < 0.01, f"standard error {se:.4f} too large to tell"
    assert abs(mean - 1) < 4 * se, f"mean ratio {mean:.4f}, 1 +- {4 * se:.4f}"
    nv = torch.tensor(naive, dtype=torch.float64)
    # The factor matters: without it the in-batch part's 1/(1 - q(t)) bias shows.
    off = abs(float(nv.mean()) - 1)
    assert off > 6 * float(nv.std() / math.sqrt(trials)), f"naive ratio {float(nv.mean()):.4f} looks unbiased"
    print(f"     mean ratio {mean:.4f} (SE {se:.4f}); without 1/(1-q(t)): {float(nv.mean()):.4f}")


print(f"seed {SEED}")
failed = results.count(None)
print(f"{len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
