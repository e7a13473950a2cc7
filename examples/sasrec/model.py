"""SASRec (Kang & McAuley, 2018): a causal self-attention encoder over item sequences.

Layout (pre-LayerNorm, as in the original, which normalizes before attention and before the feed-forward
and ends with a final LayerNorm):

    x = item_emb(ids) * sqrt(hidden) + pos_emb(0 .. maxlen-1);  x = dropout(x)
    per block:  x = x + dropout(attn(LN(x)))        causal, multi-head, dropout on attention weights
                x = x + FFN(LN(x))                  Linear-ReLU-dropout-Linear-dropout, width = hidden
    h = LN(x)

Differences from the original's code, stated: keys and values also see the LayerNorm'd input (the original
normalizes only the queries and takes the residual from them), and a query never attends to a padding key
(the original lets them in and zeroes padding inputs instead). Positions are indices into the left-padded
window, so the latest item is always at position maxlen-1, as in the original.

Scores are tied to the item embedding: score(h, item t) = h . item_emb.weight[t]; the catalog matrix used by
the losses is C = item_emb.weight[1:V+1] (row t-1 is item t, row 0 of the table is padding).

mask_token=True (the masked objective, BERT4Rec-style): the table has one more row, id V+1, the mask token; it
is an input only and stays out of the scored catalog. forward(ids, causal=False) runs the encoder
bidirectionally (every query sees every non-padding key).
"""

import inspect
import math
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

_HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden, heads, dropout):
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.attn_dropout = dropout

    def forward(self, x, allowed):
        """x [B, L, D]; allowed [B, 1, L, L] bool, True where query i may attend to key j."""
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        p = self.attn_dropout if self.training else 0.0
        if _HAS_SDPA:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
            att = att.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
            att = F.dropout(att, p=p, training=self.training)
            out = att @ v
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class Block(nn.Module):
    def __init__(self, hidden, heads, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(hidden)
        self.attn = CausalSelfAttention(hidden, heads, dropout)
        self.ln2 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden),
            nn.Dropout(dropout),
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x, allowed):
        x = x + self.drop(self.attn(self.ln1(x), allowed))
        return x + self.ff(self.ln2(x))


class SASRec(nn.Module):
    def __init__(self, num_items, hidden=64, blocks=2, heads=1, maxlen=50, dropout=0.2, mask_token=False):
        super().__init__()
        self.num_items = num_items
        self.hidden = hidden
        self.maxlen = maxlen
        self.mask_id = num_items + 1 if mask_token else None
        self.item_emb = nn.Embedding(num_items + 1 + int(mask_token), hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(maxlen, hidden)
        self.emb_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([Block(hidden, heads, dropout) for _ in range(blocks)])
        self.final_ln = nn.LayerNorm(hidden)
        self.reset_parameters()

    def reset_parameters(self):
        std = 1.0 / math.sqrt(self.hidden)
        nn.init.normal_(self.item_emb.weight, 0.0, std)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        nn.init.normal_(self.pos_emb.weight, 0.0, std)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def catalog(self):
        """C [num_items, hidden]: row t-1 is item t (the padding row 0 and the mask token's row are left out)."""
        return self.item_emb.weight[1:self.num_items + 1]

    def forward(self, ids, causal=True):
        """ids [B, L] left-padded item ids (0 = padding), L <= maxlen -> hidden states [B, L, hidden]; causal=False:
        bidirectional attention (the masked objective)."""
        B, L = ids.shape
        pos = torch.arange(self.maxlen - L, self.maxlen, device=ids.device)
        x = self.item_emb(ids) * math.sqrt(self.hidden) + self.pos_emb(pos)[None]
        x = self.emb_dropout(x)
        real = ids != 0  # [B, L]
        idx = torch.arange(L, device=ids.device)
        order = idx[None, :] <= idx[:, None] if causal else torch.ones(L, L, dtype=torch.bool, device=ids.device)
        diag = idx[None, :] == idx[:, None]
        # A padding query (all its keys are padding) attends to itself only, so no row is all -inf.
        allowed = (order[None] & (real[:, None, :] | diag[None]))[:, None]  # [B, 1, L, L]
        for block in self.blocks:
            x = block(x, allowed)
        return self.final_ln(x)


def make_adam(params, kind, device, lr, betas=(0.9, 0.999)):
    """(Adam, which one): kind fused / auto take fused=True on CUDA where this torch supports it (auto falls back
    silently, fused says why); foreach or auto elsewhere take PyTorch's foreach / default implementation."""
    params = list(params)
    kw = {"lr": lr, "betas": betas}
    if kind in ("fused", "auto"):
        supported = "fused" in inspect.signature(torch.optim.Adam).parameters
        if device.type == "cuda" and supported:
            try:
                return torch.optim.Adam(params, fused=True, **kw), "fused"
            except (RuntimeError, TypeError, ValueError) as exc:
                if kind == "fused":
                    print(f"--adam fused: {exc}; using the default Adam", file=sys.stderr)
        elif kind == "fused":
            why = f"on {device}" if supported else f"in torch {torch.__version__}"
            print(f"--adam fused is not available {why}; using the default Adam", file=sys.stderr)
    if kind == "foreach":
        return torch.optim.Adam(params, foreach=True, **kw), "foreach"
    return torch.optim.Adam(params, **kw), "default"
