"""CCE- in plain PyTorch (fp32 accumulation, float64 for float64 inputs): the CPU path and the fallback."""
import math

import torch

_M = 0xFFFFFFFF


def _mul32(a, b):
    """(high, low) 32-bit words of the product of u32 values held in int64 tensors (16-bit limbs, no overflow)."""
    a0, a1, b0, b1 = a & 0xFFFF, a >> 16, b & 0xFFFF, b >> 16
    lo = a0 * b0
    m1 = a1 * b0 + (lo >> 16)
    m2 = a0 * b1 + (m1 & 0xFFFF)
    hi = (a1 * b1 + (m1 >> 16) + (m2 >> 16)) & _M
    return hi, ((m2 & 0xFFFF) << 16 | (lo & 0xFFFF)) & _M


def philox_uniform(n, k, v, seed, device, stream=0):
    """The in-kernel sampler's draws: slot j of row i from word j mod 4 of Philox4x32-10(counter [j / 4, i,
    stream, 0], key seed); stream 1 draws the negatives of row groups (shared negatives; i is then the group)."""
    slot = torch.arange(k, device=device, dtype=torch.int64).repeat(n)
    c0 = slot // 4
    c1 = torch.arange(n, device=device, dtype=torch.int64).repeat_interleave(k)
    c2 = torch.full_like(c0, stream)
    c3 = torch.zeros_like(c0)
    k0, k1 = seed & _M, (seed >> 32) & _M
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & _M, (k1 + 0xBB67AE85) & _M
        hi0, lo0 = _mul32(torch.full_like(c0, 0xD2511F53), c0)
        hi1, lo1 = _mul32(torch.full_like(c2, 0xCD9E8D57), c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    word = torch.stack((c0, c1, c2, c3), dim=1).gather(1, (slot % 4).unsqueeze(1)).squeeze(1)
    col, _ = _mul32(word, torch.full_like(word, v))
    return col.view(n, k)


def cce_minus(e, c, targets, negatives, logq, ignore_index, reduction, chunk=4096, share=None):
    """negatives [N, K], or [ceil(N / share), K] with share: one row of negatives per group of share rows (read
    per slice of rows, never expanded to [N, K]). Slices of rows gather at most about 2**24 embedding elements."""
    return cce_sources(e, c, targets, [(negatives, share, logq, None)], ignore_index, reduction, chunk)


def in_batch_part(targets, ignore_index, group, logq):
    """The in-batch candidates as a part of cce_sources: the targets of all rows (group None: one row [1, N] for
    every row) or of each group of `group` consecutive rows ([G, group]); ignored targets are no candidates."""
    t = targets.long()
    if group:
        pad = -t.shape[0] % group
        t = torch.cat([t, t.new_full((pad,), ignore_index)]).view(-1, group)
    else:
        t = t[None]
    valid = t != ignore_index
    return torch.where(valid, t, torch.zeros_like(t)), group or "all", logq, valid


def cce_sources(e, c, targets, parts, ignore_index, reduction, chunk=4096):
    """CCE- over candidates from several parts. parts: (candidates, share, logq, valid) each: candidates an
    integer tensor [N, K_p] (share None), [ceil(N / share), K_p] (one row per group of share rows) or [1, K_p]
    (share "all": the same candidates for every row, gathered once); logq [V] log q_p or None (uniform q =
    1/(V-1)); valid None or a bool tensor like candidates (False: no candidate). A candidate equal to the row's
    target is rejected; k_i counts the accepted ones of all parts; s_ij = e.c_n - log(k_i q_p(n))."""
    acc = torch.float64 if e.dtype == torch.float64 else torch.float32
    v, (n, d) = c.shape[0], e.shape
    width = sum(p[0].shape[1] * (1 if p[1] == "all" else d) for p in parts)
    chunk = max(1, min(chunk, (1 << 24) // max(1, width)))
    # The candidates every row shares: their embeddings gathered once ([K_p, D]).
    fixed = [c[p[0][0].long()].to(acc) if p[1] == "all" else None for p in parts]
    logqs = [None if p[2] is None else p[2].to(acc) for p in parts]
    rows = []
    for s in range(0, n, chunk):
        ee = e[s:s + chunk].to(acc)
        t = targets[s:s + chunk].long()
        live = t != ignore_index
        ts = torch.where(live, t, torch.zeros_like(t))
        s0 = (ee * c[ts].to(acc)).sum(-1)
        idx = torch.arange(s, s + t.shape[0], device=e.device)
        got = []
        for (cand, share, _, valid), cc in zip(parts, fixed):
            if share == "all":
                neg = cand[:1].long().expand(t.shape[0], -1)
                dots = ee @ cc.t()
                ok = neg != ts[:, None]
                ok = ok if valid is None else ok & valid[:1]
            else:
                r = (idx // share if share else idx).to(cand.device)
                neg = cand[r].long()
                dots = torch.einsum("nd,nkd->nk", ee, c[neg].to(acc))
                ok = neg != ts[:, None]
                ok = ok if valid is None else ok & valid[r]
            got.append((neg, dots, ok))
        k = sum(ok.sum(1, keepdim=True) for _, _, ok in got)
        corr = -torch.log(k.clamp_min(1).to(acc))
        logits = [s0[:, None]]
        for (neg, dots, ok), lq in zip(got, logqs):
            sj = dots + (corr + math.log(v - 1) if lq is None else corr - lq[neg])
            logits.append(sj.masked_fill(~ok, float("-inf")))
        lse = torch.logsumexp(torch.cat(logits, 1), 1)
        rows.append(torch.where(live, lse - s0, torch.zeros_like(lse)))
    loss = torch.cat(rows)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (targets != ignore_index).sum().clamp_min(1).to(loss.dtype)
