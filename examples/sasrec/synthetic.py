#!/usr/bin/env python3
"""Seeded synthetic sequences over large catalogs (V = 10^5 - 10^7 items), in the format of ../shared/data
(`user_id item item ...`, chronological, item ids from 1), for scale runs of examples/sasrec.

    python3 examples/sasrec/synthetic.py --items 1000000 --users 200000 --seed 1 --out /tmp/syn-1m.txt

The model (all draws from one numpy Generator seeded by --seed, so a file is reproducible):
- Items fall into C = items / --cluster-size clusters (topics). Within a cluster, items have Zipf-like popularity
  (weight 1 / rank^--zipf, ranks a random permutation); clusters have Zipf-like popularity too.
- Clusters form a sparse Markov chain: each cluster has --successors successor clusters, drawn by cluster popularity,
  with Dirichlet transition weights.
- A user starts in a cluster drawn by popularity. After each item, with probability --stay the next item comes from
  the same cluster, else from a successor drawn by the transition weights. The item within the cluster is drawn by
  its popularity, never repeating the item just seen.
- Lengths are 1 + a geometric number of steps with mean --mean-length, capped at --max-length (at least 3 items, so
  every user has validation and test targets).
The next item is predictable from the recent items (their cluster and its successors) beyond popularity alone, so
next-item NDCG is learnable and a model that learns the transitions scores higher than popularity. It has no text,
time or user features: the real data sets stay the reference for quality; this one is for scale (memory, speed, and
how NDCG moves with negatives and batch size when the catalog is large).
"""
import argparse
import sys

import numpy as np


def args_of(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--users", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cluster-size", type=int, default=200, help="items per cluster (topic)")
    p.add_argument("--successors", type=int, default=8, help="successor clusters of each cluster")
    p.add_argument("--stay", type=float, default=0.6, help="probability that the next item stays in the cluster")
    p.add_argument("--zipf", type=float, default=1.1, help="exponent of the popularity within and across clusters")
    p.add_argument("--mean-length", type=float, default=20.0)
    p.add_argument("--max-length", type=int, default=200)
    p.add_argument("--out", required=True, help="output file ('-' for stdout)")
    a = p.parse_args(argv)
    if a.items < 2 * a.cluster_size or a.cluster_size < 2:
        p.error("--items must be at least 2 clusters of --cluster-size >= 2 items")
    if a.users < 1 or not 0 <= a.stay <= 1 or a.successors < 1 or a.mean_length < 1 or a.max_length < 3:
        p.error("--users >= 1, 0 <= --stay <= 1, --successors >= 1, --mean-length >= 1, --max-length >= 3")
    return a


def zipf_weights(rng, n, s):
    w = 1.0 / np.power(rng.permutation(n) + 1.0, s)
    return w / w.sum()


def generate(a):
    """Yields (user, items) with items a list of ids in 1..items."""
    rng = np.random.default_rng(a.seed)
    n_clusters = a.items // a.cluster_size
    size = a.cluster_size
    # Items of cluster c: ids c*size .. c*size + size - 1 (the last cluster takes the remainder), shuffled over the
    # id space so that ids carry no structure.
    ids = rng.permutation(a.items) + 1
    cluster_pop = zipf_weights(rng, n_clusters, a.zipf)
    within = np.cumsum(zipf_weights(rng, size, a.zipf))  # one popularity profile, rotated per cluster below
    succ = rng.choice(n_clusters, size=(n_clusters, a.successors), p=cluster_pop)
    trans = np.cumsum(rng.dirichlet(np.ones(a.successors), size=n_clusters), axis=1)
    shift = rng.integers(0, size, n_clusters)
    p_next = 1.0 / a.mean_length
    for u in range(1, a.users + 1):
        length = min(a.max_length, 3 + rng.geometric(p_next) - 1)
        c = rng.choice(n_clusters, p=cluster_pop)
        last = -1
        items = []
        u_stay = rng.random(length)
        u_pick = rng.random(length)
        u_item = rng.random(length)
        for j in range(length):
            if j and u_stay[j] >= a.stay:
                c = succ[c, min(a.successors - 1, int(np.searchsorted(trans[c], u_pick[j])))]
            r = (int(np.searchsorted(within, u_item[j])) + shift[c]) % size
            item = c * size + min(r, size - 1)
            if item == last:
                item = c * size + (r + 1) % size
            last = item
            items.append(int(ids[item % a.items]))
        yield u, items


def main(argv=None):
    a = args_of(argv)
    out = sys.stdout if a.out == "-" else open(a.out, "w")
    total = 0
    for u, items in generate(a):
        out.write(f"{u} {' '.join(map(str, items))}\n")
        total += len(items)
    if out is not sys.stdout:
        out.close()
    print(f"synthetic.py: {a.users} users, {a.items} items, {total} interactions", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
