"""dC reduced by item (host 'byItem' of manifest.json's steps): per-row negatives, mean / sum, float dC. The
chunk plan and launch sequence of ccekit's runtime/byitem.ts (its TypeScript twin), over the step's passes."""
import math

import torch

from ._cuda import _MANIFEST, counters, dc_buffer, inputs, pick, scalars
from ._driver import launch


def run(step, e, c, targets, negatives, logq, ignore_index, share=None, det=False, grad_scale=1.0, g_abs_sum=0.0):
    """Loss rows, dE and the fp32 dC for the upstream scale grad_scale (the same returns as _cuda.one): the sweep
    computes the loss and dE in one pass (it also writes lse + log k per row and the targets' dC terms), then
    per chunk of rows: count the accepted negatives per item, scan the counts, write each pair's row and item
    into its item's slice, and reduce runs of one item's pairs in registers (one dC update per run instead of
    one per pair). share, det and g_abs_sum are not used (the step serves neither)."""
    sweep_p, count_p, scan_p, add_p, fill_p, reduce_p = step["forward"]
    n, d = e.shape
    v = c.shape[0]
    dev = e.device
    sc = scalars(e, c, negatives, ignore_index, None, grad_scale)
    k_neg = sc["K"]
    f32 = dict(dtype=torch.float32, device=dev)
    loss, de, lse_k = torch.empty(n, **f32), torch.empty(n, d, **f32), torch.empty(n, **f32)
    dc = dc_buffer(c, False)
    common = dict(inputs(e, c, targets, negatives, logq), loss=loss, dE=de, lse_k=lse_k, dC=dc)
    launch(pick(sweep_p, e, negatives, logq), dev, n, common, sc)
    cfg = _MANIFEST["byItem"]
    # The chunk plan of runtime/byitem.ts: one packed u32 a pair, ((row - row0) << item_bits | item) + 1, where
    # that does not shrink the chunk; else two i32 words.
    item_bits = max(1, math.ceil(math.log2(v + 1)))
    two_words = max(1, min(n, cfg["pairBytes"] // 8 // k_neg))
    one_word = min(n, cfg["pairBytes"] // 4 // k_neg, 2 ** (32 - item_bits))
    packed = item_bits < 32 and one_word >= two_words
    chunk = one_word if packed else two_words
    levels = []
    m = v
    while True:
        blocks = -(-m // cfg["scanWidth"])
        levels.append((m, blocks))
        if blocks == 1:
            break
        m = blocks
    i32 = dict(dtype=torch.int32, device=dev)
    counts = torch.empty(v, **i32)
    local = [torch.empty(m, **i32) for m, _ in levels]
    totals = [torch.empty(b, **i32) for _, b in levels]
    pair_rows = torch.empty(chunk * k_neg, **i32)
    pair_items = None if packed else torch.empty(chunk * k_neg, **i32)
    pairs = {"pair_codes": pair_rows} if packed else {"pair_rows": pair_rows, "pair_items": pair_items}

    def kernel(pass_, packed_=False):
        return pick(pass_, e, negatives, logq, packed=packed_ and pass_ in step["packed"])

    count_k, fill_k, scan_k, add_k = kernel(count_p), kernel(fill_p, packed), kernel(scan_p), kernel(add_p)
    reduce_k = kernel(reduce_p, packed)
    held = counters()
    for r0 in range(0, n, chunk):
        p = min(chunk, n - r0) * k_neg
        s = dict(sc, pair0=r0 * k_neg, row0=r0, item_bits=item_bits, P=p, Q=p, S=-(-p // cfg["segment"]))
        counts.zero_()
        launch(count_k, dev, p, dict(common, counts=counts), s, count_p in held)
        # Exclusive prefix sums of the counts: block sums up the levels, the blocks' bases back down.
        src = [counts] + totals[:-1]
        for lv, (m, b) in enumerate(levels):
            bufs = {"src": src[lv], "local": local[lv], "totals": totals[lv]}
            launch(scan_k, dev, b, bufs, dict(s, n=m, B=b), scan_p in held)
        for lv in range(len(levels) - 2, -1, -1):
            base = local[lv + 1] if lv + 1 == len(levels) - 1 else src[lv + 1]
            m, b = levels[lv]
            launch(add_k, dev, b, {"local": local[lv], "base": base, "dst": src[lv]}, dict(s, n=m, B=b), add_p in held)
        cursor = local[0] if len(levels) == 1 else counts
        pair_rows[:p].zero_()
        launch(fill_k, dev, p, dict(common, cursor=cursor, **pairs), s, fill_p in held)
        launch(reduce_k, dev, s["S"], dict(common, **pairs), s, reduce_p in held)
    return loss, de, dc, 1.0
