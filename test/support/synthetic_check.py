"""Checks of examples/sasrec/synthetic.py on a small catalog: reproducible per seed, the data sets' format, Zipf-like
popularity, and learnable beyond popularity: a cluster-bigram predictor fitted on the first 80 % of the users beats
the most-popular list on the next items of the others (HR@10)."""
import collections
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GEN = os.path.join(HERE, "..", "..", "examples", "sasrec", "synthetic.py")


def run(seed, out, items=20000, users=4000):
    subprocess.run([sys.executable, GEN, "--items", str(items), "--users", str(users), "--seed", str(seed),
                    "--out", out], check=True, capture_output=True)
    return open(out).read()


with tempfile.TemporaryDirectory() as tmp:
    a, b = run(1, os.path.join(tmp, "a.txt")), run(1, os.path.join(tmp, "b.txt"))
    c = run(2, os.path.join(tmp, "c.txt"))
print(("ok  " if a == b and a != c else "FAIL") + " reproducible per seed, different across seeds")
rows = [list(map(int, line.split())) for line in a.splitlines()]
users = [r[0] for r in rows]
seqs = [r[1:] for r in rows]
fmt = users == list(range(1, len(rows) + 1)) and all(3 <= len(s) <= 200 and min(s) >= 1 and max(s) <= 20000
                                                      for s in seqs)
print(("ok  " if fmt else "FAIL") + f" format: {len(rows)} users, ids in [1, 20000], lengths 3..200")
counts = collections.Counter(i for s in seqs for i in s)
top = sum(n for _, n in counts.most_common(200)) / sum(counts.values())
print(("ok  " if top > 0.05 else "FAIL") + f" popularity: the top 1 % of items take {top:.1%} of interactions")
cut = int(0.8 * len(seqs))
nxt = collections.defaultdict(collections.Counter)
for s in seqs[:cut]:
    for x, y in zip(s, s[1:]):
        nxt[x][y] += 1
popular = [i for i, _ in collections.Counter(i for s in seqs[:cut] for i in s).most_common(10)]
hit_pop = hit_big = total = 0
for s in seqs[cut:]:
    for x, y in zip(s, s[1:]):
        guess = [i for i, _ in nxt[x].most_common(10)]
        guess += [i for i in popular if i not in guess][: 10 - len(guess)]
        hit_big += y in guess
        hit_pop += y in popular
        total += 1
print(("ok  " if hit_big > 1.5 * hit_pop else "FAIL") +
      f" learnable: transitions HR@10 {hit_big / total:.3f} vs popularity {hit_pop / total:.3f}")
