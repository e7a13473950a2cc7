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
    acc = torch.float64 if e.dtype == torch.float64 else torch.float32
    v = c.shape[0]
    n = e.shape[0]
    chunk = max(1, min(chunk, (1 << 24) // max(1, negatives.shape[1] * e.shape[1])))
    rows = []
    for s in range(0, n, chunk):
        ee = e[s:s + chunk].to(acc)
        t = targets[s:s + chunk].long()
        if share:
            neg = negatives[torch.arange(s, s + t.shape[0], device=negatives.device) // share].long()
        else:
            neg = negatives[s:s + chunk].long()
        live = t != ignore_index
        ts = torch.where(live, t, torch.zeros_like(t))
        s0 = (ee * c[ts].to(acc)).sum(-1)
        dots = torch.einsum("nd,nkd->nk", ee, c[neg].to(acc))
        ok = neg != ts[:, None]
        k = ok.sum(1, keepdim=True)
        corr = -torch.log(k.clamp_min(1).to(acc))
        if logq is None:
            corr = corr + math.log(v - 1)
            sj = dots + corr
        else:
            sj = dots - logq.to(acc)[neg] + corr
        sj = sj.masked_fill(~ok, float("-inf"))
        lse = torch.logsumexp(torch.cat([s0[:, None], sj], 1), 1)
        rows.append(torch.where(live, lse - s0, torch.zeros_like(lse)))
    loss = torch.cat(rows)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / (targets != ignore_index).sum().clamp_min(1).to(loss.dtype)
