"""Training losses over flattened rows.

Every loss takes E [N, D] (hidden states of the non-padding positions), C [V, D] (the catalog,
item_emb.weight[1:V+1], so item id t is row t-1) and targets [N] int64 rows of C in [0, V), and returns the
mean over rows. With positions=P [M] (the masked objective) E is [N_E, D] (every position of the batch),
targets is [M] and the loss rows are E[P]: cce-minus passes positions= to the package (no gather), the other
losses gather E[P].

    ce         full-catalog cross-entropy: the [N, V] logit matrix, F.cross_entropy.
    ce-minus   CE- in plain PyTorch: K uniform negatives per row (with replacement); a negative equal to the
               target is rejected (logit -inf); the k_i accepted ones get the sampling correction
               -log(k_i q(n)) = log(V-1) - log(k_i). Gathers C[negatives] as [N, K, D].
    bce        SASRec's loss: one negative per row, uniform over the V-1 non-target items,
               BCE-with-logits(pos, 1) + BCE-with-logits(neg, 0).
    cce-minus  ccekit's cce_minus_loss (the same loss as ce-minus without the [N, K, D] gather); with
               share_rows, the rows of each group of share_rows consecutive rows share their K negatives.
               Negative modes (cce-minus only): per-row (K drawn per row), shared (K drawn per group of
               share_rows rows, default 128), in-batch (the targets of the batch's rows; with share_rows those
               of the row's group: "in-batch-group"), mixed (the batch's targets plus K drawn per group of
               share_rows rows, default 128: the package's tile kernels).
               The in-batch part's q is the training targets' item frequency (train.py --in-batch-q freq), or
               uniform (--in-batch-q uniform: popular items are then over-penalized).
"""

import math
import os
import sys

import torch
import torch.nn.functional as F

LOSSES = ("ce", "ce-minus", "bce", "cce-minus")
MODES = ("per-row", "shared", "in-batch", "mixed")


def ce_loss(E, C, targets):
    return F.cross_entropy(E @ C.t(), targets)


def uniform_negatives(N, K, V, device, generator=None):
    """[N, K] int64 uniform over [0, V), with replacement (so some equal the target)."""
    return torch.randint(0, V, (N, K), device=device, generator=generator)


def ce_minus_logits(E, C, targets, negatives):
    """[N, 1+K] logits of CE- (float32, or float64 for float64 inputs): column 0 the target, columns 1..K the
    negatives (rejected: -inf)."""
    V = C.shape[0]
    acc_t = torch.promote_types(E.dtype, torch.float32)
    pos = (E * C[targets]).sum(-1, keepdim=True)  # [N, 1]
    Cn = C[negatives]  # [N, K, D]: the memory-hungry gather
    neg = torch.bmm(Cn, E.unsqueeze(2)).squeeze(2)  # [N, K]
    accepted = negatives != targets.unsqueeze(1)  # [N, K]
    k = accepted.sum(1, keepdim=True)  # [N, 1] accepted negatives per row
    # A row with k_i = 0 keeps only its positive logit (loss 0); clamp keeps log(k) finite there.
    correction = math.log(V - 1) - torch.log(k.clamp(min=1).to(acc_t))
    neg = (neg.to(acc_t) + correction).masked_fill(~accepted, float("-inf"))
    return torch.cat([pos.to(acc_t), neg], dim=1)


def ce_minus_loss(E, C, targets, negatives):
    logits = ce_minus_logits(E, C, targets, negatives)
    zeros = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, zeros)


def bce_negatives(targets, V, generator=None):
    """[N] one negative per row, uniform over the V-1 items other than the target."""
    n = torch.randint(0, V - 1, targets.shape, device=targets.device, generator=generator)
    return n + (n >= targets).long()


def bce_loss(E, C, targets, negatives):
    pos = (E * C[targets]).sum(-1).float()
    neg = (E * C[negatives]).sum(-1).float()
    return F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos)) + F.binary_cross_entropy_with_logits(
        neg, torch.zeros_like(neg)
    )


def import_ccekit(package_dir):
    """ccekit_torch.cce_minus_loss from `package_dir` (the folder that holds ccekit_torch/)."""
    init = os.path.join(package_dir, "ccekit_torch", "__init__.py")
    if not os.path.exists(init):
        raise SystemExit(
            f"train.py: --loss cce-minus needs the ccekit torch package: {init} does not exist.\n"
            f"Emit it with `npx tsx cli/main.ts emit --target torch --out {package_dir}` from the repository root, "
            "or pass --ccekit-package DIR."
        )
    sys.path.insert(0, os.path.abspath(package_dir))
    try:
        from ccekit_torch import cce_minus_loss
    except ImportError as exc:
        raise SystemExit(f"train.py: cannot import ccekit_torch from {package_dir}: {exc}")
    return cce_minus_loss


def cce_options(mode, num_negatives, share_rows=None, in_batch_probs=None):
    """cce_minus_loss's candidate options for a negative mode; in_batch_probs: the q of the in-batch part (the
    training targets' item frequencies), None for uniform."""
    if mode == "per-row":
        return {"num_negatives": num_negatives, "share_rows": share_rows}
    if mode == "shared":
        return {"num_negatives": num_negatives, "share_rows": share_rows or 128}
    if mode == "mixed":
        return {"negatives": "in-batch", "num_negatives": num_negatives, "share_rows": share_rows or 128,
                "in_batch_probs": in_batch_probs}
    opts = {"negatives": "in-batch-group" if share_rows else "in-batch", "share_rows": share_rows,
            "in_batch_probs": in_batch_probs}
    if mode not in ("in-batch", "mixed"):
        raise ValueError(f"unknown negatives mode {mode!r}; one of {', '.join(MODES)}")
    return opts


def rows_of(fn):
    """A loss over rows (E, C, t) as one that also takes positions= (it gathers E[positions])."""
    return lambda E, C, t, positions=None: fn(E if positions is None else E[positions], C, t)


def make_loss(name, V, num_negatives, ccekit_package="out/torch", amp_dtype=None, share_rows=None, shuffle_groups=False,
              mode="per-row", in_batch_probs=None):
    """A function (E, C, targets, positions=None) -> scalar loss for `name`, drawing its own negatives (cce-minus:
    the candidates of `mode`, cce_options)."""
    if V < 2:
        raise ValueError("the catalog needs at least 2 items")
    if mode != "per-row" and name != "cce-minus":
        raise ValueError(f"negatives mode {mode!r} applies to cce-minus only (ce-minus is the per-row baseline)")
    if name == "ce":
        return rows_of(ce_loss)
    if name == "ce-minus":
        return rows_of(lambda E, C, t: ce_minus_loss(E, C, t,
                                                     uniform_negatives(E.shape[0], num_negatives, V, E.device)))
    if name == "bce":
        return rows_of(lambda E, C, t: bce_loss(E, C, t, bce_negatives(t, V)))
    if name == "cce-minus":
        cce = import_ccekit(ccekit_package)
        opts = cce_options(mode, num_negatives, share_rows, in_batch_probs)

        def loss(E, C, t, positions=None):
            # Under autocast hand the kernels the half-precision inputs that autocast's matmuls would use.
            if amp_dtype is not None:
                E, C = E.to(amp_dtype), C.to(amp_dtype)
            if shuffle_groups:
                # Rows in a random order, so a group of share_rows rows mixes users instead of holding
                # consecutive positions of one or two sequences (the mean loss does not depend on the order).
                perm = torch.randperm(t.shape[0], device=t.device)
                if positions is None:
                    E = E[perm]
                else:
                    positions = positions[perm]
                t = t[perm]
            if positions is not None:
                return cce(E, C, t, positions=positions, **opts)
            return cce(E, C, t, **opts)

        return loss
    raise ValueError(f"unknown loss {name!r}; one of {', '.join(LOSSES)}")


# ----------------------------------------------------------------------------------------------------------
# Self-check: the PyTorch CE- against a direct float64 loop.


def ce_minus_direct(E, C, targets, negatives):
    """Mean CE- loss computed row by row in float64 with plain Python math."""
    E = E.double().tolist()
    C = C.double().tolist()
    V = len(C)
    total = 0.0
    for e, t, negs in zip(E, targets.tolist(), negatives.tolist()):
        dot = lambda c: sum(a * b for a, b in zip(e, c))
        s0 = dot(C[t])
        acc = [n for n in negs if n != t]
        logits = [s0] + [dot(C[n]) + math.log(V - 1) - math.log(len(acc)) for n in acc]
        m = max(logits)
        total += m + math.log(sum(math.exp(x - m) for x in logits)) - s0
    return total / len(E)


def in_batch_direct(E, C, targets):
    """Mean CE- loss with the batch's targets as every row's candidates (uniform q = 1/(V-1)), in float64."""
    return ce_minus_direct(E, C, targets, targets[None, :].expand(len(targets), -1))


def self_check(ccekit_package=None):
    """Checks ce-minus (and bce, and cce-minus if its package is there) on tiny random batches; returns a list
    of report lines, raises AssertionError on a mismatch."""
    lines = []
    g = torch.Generator().manual_seed(0)
    for N, V, K, D in [(7, 5, 6, 3), (16, 40, 9, 8), (5, 2, 3, 4)]:
        E = torch.randn(N, D, generator=g)
        C = torch.randn(V, D, generator=g)
        t = torch.randint(0, V, (N,), generator=g)
        negs = torch.randint(0, V, (N, K), generator=g)
        negs[0] = t[0]  # a row whose negatives are all rejected: loss 0 for that row
        got = ce_minus_loss(E, C, t, negs).item()
        want = ce_minus_direct(E, C, t, negs)
        rejected = int((negs == t[:, None]).sum())
        assert abs(got - want) <= 1e-5 * max(1.0, abs(want)), f"ce-minus {got} != float64 {want} (N={N} V={V} K={K})"
        lines.append(f"ce-minus N={N} V={V} K={K} D={D} rejected={rejected}: torch {got:.7f} float64 {want:.7f} ok")
        # CE- logits in float64 through the same code path agree with the loop to rounding.
        got64 = ce_minus_loss(E.double(), C.double(), t, negs).item()
        assert abs(got64 - want) <= 1e-12 * max(1.0, abs(want)), f"ce-minus float64 {got64} != {want}"

    # bce: negatives never equal the target and the loss matches the formula.
    t = torch.randint(0, 7, (1000,), generator=g)
    n = bce_negatives(t, 7, generator=g)
    assert bool((n != t).all()) and int(n.min()) >= 0 and int(n.max()) < 7, "bce negatives out of range"
    E, C = torch.randn(4, 3, generator=g), torch.randn(7, 3, generator=g)
    t4, n4 = t[:4], n[:4]
    want = sum(
        math.log1p(math.exp(-float(E[i] @ C[t4[i]]))) + math.log1p(math.exp(float(E[i] @ C[n4[i]]))) for i in range(4)
    ) / 4
    got = bce_loss(E, C, t4, n4).item()
    assert abs(got - want) <= 1e-5 * max(1.0, abs(want)), f"bce {got} != {want}"
    lines.append(f"bce: torch {got:.7f} direct {want:.7f} ok")

    if ccekit_package and os.path.exists(os.path.join(ccekit_package, "ccekit_torch", "__init__.py")):
        cce = import_ccekit(ccekit_package)
        N, V, K, D = 16, 40, 9, 8
        E, C = torch.randn(N, D, generator=g), torch.randn(V, D, generator=g)
        t = torch.randint(0, V, (N,), generator=g)
        negs = torch.randint(0, V, (N, K), generator=g)
        got = float(cce(E, C, t, negatives=negs))
        want = ce_minus_direct(E, C, t, negs)
        assert abs(got - want) <= 1e-5 * max(1.0, abs(want)), f"cce-minus {got} != float64 {want}"
        lines.append(f"cce-minus (ccekit_torch, given negatives): {got:.7f} float64 {want:.7f} ok")
        # In-batch candidates (duplicates of targets) and positions= rows of a larger E, against a float64 loop.
        t = torch.randint(0, 6, (N,), generator=g)
        E_all = torch.randn(2 * N + 3, D, generator=g)
        pos = torch.randperm(E_all.shape[0], generator=g)[:N]
        got = float(cce(E_all, C, t, negatives="in-batch", positions=pos))
        want = in_batch_direct(E_all[pos], C, t)
        assert abs(got - want) <= 1e-5 * max(1.0, abs(want)), f"cce-minus in-batch {got} != float64 {want}"
        lines.append(f"cce-minus (ccekit_torch, in-batch, positions): {got:.7f} float64 {want:.7f} ok")
    else:
        lines.append("cce-minus: skipped (no ccekit_torch package)")
    return lines
