#!/usr/bin/env python3
"""The batch size x negatives grid under a fixed memory budget: train.py runs, then tables and a plot.

    python3 examples/sasrec/grid.py --data /tmp/syn-1m.txt --name syn1m --out-dir runs/grid-syn1m \\
        --budget-gib 40 --batches 128,512 --negatives 256,1024,4096,16384 --losses ce-minus,cce-minus --seeds 1,2 \\
        --extra ce:128:0,cce-shared:128:4096,cce-in-batch:512:0 --parallel 6 --epochs 4 --ccekit-package out/torch \\
        -- --hidden 256 --maxlen 200 --blocks 2 --amp bf16 --lr 1e-3 --eval-every 4 --no-progress --time-steps

A run is (method, batch, K, seed). The grid is every --losses method x --batches x --negatives x --seeds; --extra adds
single runs METHOD:BATCH:K for every seed of --extra-seeds (default: the first of --seeds). Methods and their
train.py flags:

    ce            --loss ce                                  (no negatives: K 0)
    ce-minus      --loss ce-minus --negatives K              (PyTorch CE-)
    cce-per-row   --loss cce-minus --negatives K             (ccekit; --losses also takes cce-minus for it)
    cce-shared    --loss cce-minus --negatives-mode shared --negatives K   (groups of 128 rows, or --share-rows)
    cce-in-batch  --loss cce-minus --negatives-mode in-batch (no drawn negatives: K 0)
    cce-mixed     --loss cce-minus --negatives-mode mixed --negatives K    (groups of 128 rows, or --share-rows)

Each run is a train.py subprocess (this Python) with --memory-budget-gib, --seed and --out OUT/runs/ID.json (log:
OUT/logs/ID.log, ID = NAME-METHOD-bB-kK-sS), at most --parallel at once, OMP_NUM_THREADS=1 unless set. The arguments
after `--` go to every run (--share-rows only to cce-shared and cce-mixed). A run whose report exists with status ok
or oom is not run again, so a second call can add seeds or methods; --report-only runs nothing. --max-run-s S kills
a run after S seconds (status timeout); a run that exits without a report has status failed (both get a small report
with that status, and run again on the next call).

Then OUT/grid.json (an entry per run), OUT/grid.md (a table per method: rows batch, columns K, cells "test NDCG@10
mean over seeds / peak GiB" or "does not fit"; then every run, measured against predicted peak), OUT/grid.svg (test
NDCG@10 against K) and OUT/plan-check.json (the runs that fit, for `ccekit plan --check`: measured peak memory
against the planner's, each with the busiest step's rows where the report has them). The predicted peak and step time come from the planner of the ccekit package, where it can be
imported: ccekit_torch.plan.estimate(model, config); null where not.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

from methods import METHODS  # examples/sasrec/methods.py: method -> (--loss, --negatives-mode, takes K)

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "train.py")

ALIASES = {"cce-minus": "cce-per-row"}
GROUPED = ("cce-shared", "cce-mixed")  # draws shared by groups of --share-rows rows (default 128)
DEFAULT_SHARE = 128
# train.py flags the grid sets itself (a run's own), and which grid.py flag says them instead.
OWN_FLAGS = {"--data": "--data", "--loss": "--losses / --extra", "--negatives": "--negatives / --extra",
             "--batch-size": "--batches / --extra", "--seed": "--seeds", "--out": "--out-dir",
             "--memory-budget-gib": "--budget-gib", "--negatives-mode": "--losses / --extra METHOD",
             "--epochs": "--epochs", "--ccekit-package": "--ccekit-package"}
STATUSES = ("ok", "oom", "timeout", "failed", "missing")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write(f"grid.py: error: {message} (see --help)\n")
        sys.exit(2)


def parse_args(argv):
    argv = list(argv)
    extra_train = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra_train = argv[:i], argv[i + 1:]
    p = Parser(prog="grid.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="sequence file for every run")
    p.add_argument("--name", required=True, help="the grid's name: the runs' file names start with it")
    p.add_argument("--out-dir", required=True, help="runs/, logs/, grid.json, grid.md and grid.svg go here")
    p.add_argument("--budget-gib", type=float, default=40.0, help="--memory-budget-gib of every run (default 40)")
    p.add_argument("--batches", help="comma list of batch sizes (the grid's rows)")
    p.add_argument("--negatives", help="comma list of K (the grid's columns)")
    p.add_argument("--losses", help="comma list of methods for the grid: ce-minus, cce-minus (= cce-per-row), ...")
    p.add_argument("--seeds", default="1", help="comma list of seeds (default 1)")
    p.add_argument("--extra", help="comma list of single runs METHOD:BATCH:K (K 0 for ce, cce-in-batch)")
    p.add_argument("--extra-seeds", help="comma list of seeds for the --extra runs (default: the first of --seeds)")
    p.add_argument("--parallel", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--epochs", type=int, default=None, help="train.py --epochs of every run")
    p.add_argument("--ccekit-package", default=None, help="train.py --ccekit-package, and where the planner is")
    p.add_argument("--max-run-s", type=float, default=None, help="kill a run after this many seconds (timeout)")
    p.add_argument("--report-only", action="store_true", help="run nothing: tables and plot of the reports there")
    a = p.parse_args(argv)

    def int_list(flag, text, low):
        items = [x.strip() for x in (text or "").split(",")]
        if not any(items):
            p.error(f"{flag}: empty list")
        out = []
        for x in items:
            try:
                v = int(x)
            except ValueError:
                p.error(f"{flag}: {x!r} is not an integer")
            if v < low:
                p.error(f"{flag}: {v} must be >= {low}")
            if v not in out:
                out.append(v)
        return out

    def method_of(flag, m):
        m = ALIASES.get(m, m)
        if m not in METHODS:
            p.error(f"{flag}: unknown method {m!r}; one of {', '.join(list(METHODS) + list(ALIASES))}")
        return m

    if a.parallel < 1:
        p.error(f"--parallel must be >= 1, got {a.parallel}")
    if a.epochs is not None and a.epochs < 1:
        p.error(f"--epochs must be >= 1, got {a.epochs}")
    if a.max_run_s is not None and not a.max_run_s > 0:
        p.error(f"--max-run-s must be > 0, got {a.max_run_s:g}")
    if not a.budget_gib > 0:
        p.error(f"--budget-gib must be > 0, got {a.budget_gib:g}")
    if not a.report_only and not a.data:
        p.error("--data is required (unless --report-only)")
    if not a.name or any(c in a.name for c in "/\\ ") or a.name.startswith("."):
        p.error(f"--name {a.name!r}: a plain file-name prefix, no slashes or spaces")
    a.seed_list = int_list("--seeds", a.seeds, 0)
    a.extra_seed_list = int_list("--extra-seeds", a.extra_seeds, 0) if a.extra_seeds is not None else a.seed_list[:1]

    a.methods = []
    if a.losses is not None:
        names = [x.strip() for x in a.losses.split(",")]
        if not any(names):
            p.error("--losses: empty list")
        a.methods = [method_of("--losses", m) for m in names if m]
        a.batch_list = int_list("--batches", a.batches, 1)
        if any(METHODS[m][2] for m in a.methods):
            a.k_list = int_list("--negatives", a.negatives, 1)
        else:
            a.k_list = []
    else:
        for flag, v in (("--batches", a.batches), ("--negatives", a.negatives)):
            if v is not None:
                p.error(f"{flag} needs --losses (the grid's methods)")
    a.extras = []
    if a.extra is not None:
        specs = [x.strip() for x in a.extra.split(",")]
        if not any(specs):
            p.error("--extra: empty list")
        for spec in specs:
            parts = spec.split(":")
            if len(parts) != 3:
                p.error(f"--extra: {spec!r} is not METHOD:BATCH:K")
            m = method_of("--extra", parts[0])
            try:
                b, k = int(parts[1]), int(parts[2])
            except ValueError:
                p.error(f"--extra: {spec!r}: BATCH and K must be integers")
            if b < 1:
                p.error(f"--extra: {spec!r}: BATCH must be >= 1")
            if METHODS[m][2] and k < 1:
                p.error(f"--extra: {spec!r}: {m} draws K negatives, K must be >= 1")
            if not METHODS[m][2] and k != 0:
                p.error(f"--extra: {spec!r}: {m} has no drawn negatives, give K 0")
            a.extras.append((m, b, k))
    if not a.methods and not a.extras:
        p.error("no runs: give --losses (with --batches, --negatives) or --extra")

    # The arguments after `--`: none that the grid sets itself; --share-rows only for the grouped methods.
    a.train_args, a.share_rows = [], None
    i = 0
    while i < len(extra_train):
        tok = extra_train[i]
        flag = tok.split("=", 1)[0]
        if flag in OWN_FLAGS:
            p.error(f"after --: {flag} is set by the grid for each run; use {OWN_FLAGS[flag]}")
        if flag == "--share-rows":
            if "=" in tok:
                val = tok.split("=", 1)[1]
            elif i + 1 < len(extra_train):
                i += 1
                val = extra_train[i]
            else:
                p.error("after --: --share-rows needs a value")
            try:
                a.share_rows = int(val)
            except ValueError:
                p.error(f"after --: --share-rows {val!r} is not an integer")
            if a.share_rows < 1:
                p.error(f"after --: --share-rows must be >= 1, got {a.share_rows}")
        else:
            a.train_args.append(tok)
        i += 1
    return a


def plan_runs(a):
    """Every run of the grid and the extras (no duplicates), as dicts."""
    seen, runs = set(), []

    def add(m, b, k, s):
        k = k if METHODS[m][2] else 0
        rid = f"{a.name}-{m}-b{b}-k{k}-s{s}"
        if rid in seen:
            return
        seen.add(rid)
        loss, mode, _ = METHODS[m]
        runs.append({"id": rid, "method": m, "loss": loss, "negatives_mode": mode or "per-row", "batch": b, "K": k,
                     "seed": s, "share": (a.share_rows or DEFAULT_SHARE) if m in GROUPED else None,
                     "report": os.path.join(a.out_dir, "runs", rid + ".json"),
                     "log": os.path.join(a.out_dir, "logs", rid + ".log")})

    for m in a.methods:
        for b in a.batch_list:
            for k in (a.k_list if METHODS[m][2] else [0]):
                for s in a.seed_list:
                    add(m, b, k, s)
    for m, b, k in a.extras:
        for s in a.extra_seed_list:
            add(m, b, k, s)
    return runs


def train_command(a, r):
    cmd = [sys.executable, TRAIN, "--data", a.data, "--loss", r["loss"], "--batch-size", str(r["batch"]),
           "--seed", str(r["seed"]), "--memory-budget-gib", f"{a.budget_gib:g}", "--out", r["report"]]
    if r["K"]:
        cmd += ["--negatives", str(r["K"])]
    if r["negatives_mode"] != "per-row":
        cmd += ["--negatives-mode", r["negatives_mode"]]
    if r["share"] is not None and a.share_rows is not None:
        cmd += ["--share-rows", str(a.share_rows)]
    if a.epochs is not None:
        cmd += ["--epochs", str(a.epochs)]
    if a.ccekit_package is not None:
        cmd += ["--ccekit-package", a.ccekit_package]
    return cmd + a.train_args


def read_report(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def finished(r):
    """The run's report where it exists with status ok or oom (train.py's own), else None."""
    rep = read_report(r["report"])
    return rep if rep is not None and rep.get("status") in ("ok", "oom") else None


def check_stale(a, r, rep):
    """A warning where a kept report was made with other arguments than this call would give its run."""
    ra = rep.get("args") or {}
    want = {"loss": r["loss"], "batch_size": r["batch"], "seed": r["seed"], "negatives_mode": r["negatives_mode"]}
    if r["K"]:
        want["negatives"] = r["K"]
    if a.epochs is not None:
        want["epochs"] = a.epochs
    diff = [f"{k} {ra.get(k)!r} (now {v!r})" for k, v in want.items() if ra.get(k) != v]
    if a.data and ra.get("data") and os.path.basename(ra["data"]) != os.path.basename(a.data):
        diff.append(f"data {ra['data']!r} (now {a.data!r})")
    if diff:
        print(f"grid.py: {r['id']}: kept report made with {', '.join(diff)}; delete {r['report']} to run it again",
              file=sys.stderr)


def last_error(path):
    """The log's last line that names an error (train.py's own messages, a traceback's exception), else its last."""
    try:
        with open(path, errors="replace") as f:
            lines = [x.strip() for x in f.read().splitlines() if x.strip()]
    except OSError:
        return ""
    named = [x for x in lines if x.startswith("train.py:") or "Error" in x]
    return (named or lines or [""])[-1]


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def execute(a, runs):
    """Runs the runs that have no ok/oom report, at most --parallel at once."""
    os.makedirs(os.path.join(a.out_dir, "runs"), exist_ok=True)
    os.makedirs(os.path.join(a.out_dir, "logs"), exist_ok=True)
    todo = []
    for r in runs:
        rep = finished(r)
        if rep is None:
            todo.append(r)
        else:
            check_stale(a, r, rep)
    # Smaller batches (more steps) and larger K first: the long runs start early.
    todo.sort(key=lambda r: (r["batch"], -r["K"], r["method"], r["seed"]))
    kept = len(runs) - len(todo)
    print(f"grid.py: {len(runs)} runs, {kept} kept from earlier calls, {len(todo)} to run, {a.parallel} at once",
          flush=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    running, done = [], 0
    try:
        while todo or running:
            while todo and len(running) < a.parallel:
                r = todo.pop(0)
                if os.path.exists(r["report"]):
                    os.remove(r["report"])  # a timeout / failed stub of an earlier call
                log = open(r["log"], "w")
                cmd = train_command(a, r)
                log.write(" ".join(cmd) + "\n")
                log.flush()
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
                running.append((proc, r, time.monotonic(), log))
            time.sleep(0.05)
            for item in list(running):
                proc, r, t0, log = item
                rc = proc.poll()
                elapsed = time.monotonic() - t0
                timed_out = rc is None and a.max_run_s is not None and elapsed > a.max_run_s
                if rc is None and not timed_out:
                    continue
                if timed_out:
                    proc.terminate()
                    try:
                        rc = proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        rc = proc.wait()
                log.close()
                running.remove(item)
                done += 1
                rep = read_report(r["report"])
                if timed_out:
                    rep = {"status": "timeout", "max_run_s": a.max_run_s, "returncode": rc}
                    write_json(r["report"], rep)
                elif rc != 0 or rep is None or rep.get("status") not in ("ok", "oom"):
                    rep = {"status": "failed", "returncode": rc, "error": last_error(r["log"])}
                    write_json(r["report"], rep)
                print(f"[{done}/{done + len(todo) + len(running)}] {r['id']}: {describe(rep)} ({elapsed:.1f} s)",
                      flush=True)
    except KeyboardInterrupt:
        for proc, _, _, _ in running:
            proc.terminate()
        for proc, _, _, _ in running:
            proc.wait()
        raise


def describe(rep):
    s = rep.get("status")
    if s == "ok" and rep.get("test"):
        return f"ok, test NDCG@10 {rep['test']['ndcg@10']:.4f}"
    if s == "oom":
        o = rep.get("oom") or {}
        return f"oom (epoch {o.get('epoch')}, step {o.get('step')})"
    if s == "failed":
        return f"failed (exit {rep.get('returncode')}): {rep.get('error', '')}"
    return str(s)


# ----------------------------------------------------------------------------------------------------------
# grid.json


def planner(pkg_dir):
    """ccekit_torch.plan.estimate from the package folder, or None (with the reason) where it cannot be had."""
    pkg_dir = os.path.abspath(pkg_dir or "out/torch")
    if not os.path.isdir(os.path.join(pkg_dir, "ccekit_torch")):
        return None, f"no ccekit_torch in {pkg_dir}"
    sys.path.insert(0, pkg_dir)
    try:
        from ccekit_torch import plan  # noqa: E402

        return plan.estimate, None
    except Exception as exc:  # ImportError / AttributeError (no planner yet), or the package's import failed
        return None, f"{type(exc).__name__}: {exc}"


def mean_of(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def entry_of(r, rep, model, estimate, notes):
    rep = rep or {"status": "missing"}
    status = rep.get("status") if rep.get("status") in STATUSES else "failed"
    e = {k: r[k] for k in ("id", "method", "loss", "negatives_mode", "batch", "K", "seed", "share")}
    e["status"] = status
    epochs = rep.get("epochs") or []
    test, val, step = rep.get("test") or {}, rep.get("best_val") or {}, rep.get("step_ms") or {}
    data = rep.get("data") or {}
    e["peak_mib"] = rep.get("peak_mem_mib")
    e["s_per_epoch"] = mean_of([x.get("time_s") for x in epochs])
    e["step_ms"] = step.get("median")
    e["step_ms_p90"] = step.get("p90")
    e["val_ndcg@10"] = val.get("ndcg@10")
    e["val_hr@10"] = val.get("hr@10")
    e["test_ndcg@10"] = test.get("ndcg@10")
    e["test_hr@10"] = test.get("hr@10")
    e["epochs_run"] = len(epochs)
    e["card"] = rep.get("device_name")
    e["memory_budget_gib"] = rep.get("memory_budget_gib")
    e["oom"] = rep.get("oom")
    e["error"] = rep.get("error")
    tp, ts = data.get("train_positions"), data.get("train_sequences")
    e["rows_per_step"] = tp / math.ceil(ts / r["batch"]) if tp and ts else None
    e["predicted_peak_mib"] = e["predicted_step_ms"] = None
    m = model_of(rep) or model
    rows = rep.get("rows_per_step") if rep else None
    e["rows_per_step_max"] = rows.get("max") if rows else None
    e["planned_model"] = None
    if estimate is not None and m is not None:
        config = {"method": r["method"], "batch": r["batch"], "seqLen": m["maxLen"], "K": r["K"], "share": r["share"]}
        # The peak comes from the busiest step (its rows, where the report has them), the time from the mean step.
        busiest = dict(m, fill=min(1.0, rows["max"] / (r["batch"] * m["maxLen"]))) if rows else dict(m)
        try:
            pred = estimate(busiest, config)
            e["predicted_peak_mib"] = pred["peakBytes"] / 2**20
            e["predicted_step_ms"] = estimate(dict(m), config)["stepMs"]
            e["planned_model"], e["planned_config"] = busiest, config
        except Exception as exc:  # a config the planner refuses: no prediction for this run
            notes.append(f"{r['id']}: planner: {type(exc).__name__}: {exc}")
    e["report"] = f"runs/{r['id']}.json"
    e["log"] = f"logs/{r['id']}.log"
    return e


def model_of(rep):
    """The planner's model from a report: catalog, model sizes and the fill of the training sequences."""
    if not rep:
        return None
    data, args = rep.get("data") or {}, rep.get("args") or {}
    try:
        fill = data["train_positions"] / (data["train_sequences"] * args["maxlen"])
        return {"V": data["items"], "D": args["hidden"], "maxLen": args["maxlen"], "blocks": args["blocks"],
                "heads": args["heads"], "fill": fill}
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def build(a, runs):
    reports = {r["id"]: read_report(r["report"]) for r in runs}
    model = next((m for m in map(model_of, reports.values()) if m), None)
    estimate, why = planner(a.ccekit_package)
    notes = [] if estimate is not None else [f"no planner predictions ({why})"]
    entries = [entry_of(r, reports[r["id"]], model, estimate, notes) for r in runs]
    cards = [e["card"] for e in entries if e["card"]]
    card = max(set(cards), key=cards.count) if cards else None
    data_summary = next((rep.get("data") for rep in reports.values() if rep and rep.get("data")), None)
    return {"name": a.name, "data": a.data, "data_summary": data_summary, "budget_gib": a.budget_gib, "card": card,
            "train_args": a.train_args, "share_rows": a.share_rows, "planner": estimate is not None, "notes": notes,
            "runs": entries}


# ----------------------------------------------------------------------------------------------------------
# grid.md


def fmt(x, spec, none="–"):
    return none if x is None else format(x, spec)


def num(x, none="–"):
    """A measurement: one decimal from 10 up, else three significant digits."""
    return none if x is None else format(x, ".1f" if abs(x) >= 10 else ".3g")


def gib(mib, none="n/a"):
    return none if mib is None else num(mib / 1024)


def k_label(k):
    return "none" if k == 0 else str(k)


def method_flags(m):
    loss, mode, has_k = METHODS[m]
    s = f"--loss {loss}"
    if mode:
        s += f" --negatives-mode {mode}"
    return s + (" --negatives K" if has_k else "")


def series_methods(grid):
    out = []
    for e in grid["runs"]:
        if e["method"] not in out:
            out.append(e["method"])
    return out


def cell(es, budget):
    ok = [e for e in es if e["status"] == "ok"]
    oom = [e for e in es if e["status"] == "oom"]
    if ok:
        nd = mean_of([e["test_ndcg@10"] for e in ok])
        peaks = [e["peak_mib"] for e in ok if e["peak_mib"] is not None]
        s = f"{fmt(nd, '.4f', 'n/a')} / {gib(max(peaks)) if peaks else 'n/a'} GiB"
        if len(ok) > 1:
            s += f" ({len(ok)} seeds)"
        if oom:
            s += f"; {len(oom)} of {len(es)} seeds OOM"
        others = [e["status"] for e in es if e["status"] not in ("ok", "oom")]
        return s + (f"; {', '.join(others)}" if others else "")
    if oom:
        g = oom[0]["memory_budget_gib"] or budget
        return f"does not fit (OOM at {g:g} GiB)"
    return ", ".join(sorted({e["status"] for e in es}))


def markdown(grid):
    card = grid["card"] or "unknown card"
    out = [f"# SASRec grid {grid['name']}: {card}, budget {grid['budget_gib']:g} GiB", ""]
    d = grid["data_summary"]
    if grid["data"]:
        ds = (f" ({d['users']} users, {d['items']} items, {d['train_positions']} training positions)" if d else "")
        out.append(f"Data: `{grid['data']}`{ds}. Every run: `{' '.join(grid['train_args']) or '(defaults)'}`.")
    out += ["Cells: test NDCG@10 (mean over seeds) / peak GiB (the largest of the seeds); \"does not fit\": out of "
            "memory under the budget.", ""]
    for m in series_methods(grid):
        es = [e for e in grid["runs"] if e["method"] == m]
        ks = sorted({e["K"] for e in es})
        bs = sorted({e["batch"] for e in es})
        out += [f"## {m} (`{method_flags(m)}`)", ""]
        out.append("| batch \\ K | " + " | ".join(k_label(k) for k in ks) + " |")
        out.append("| ---: |" + " ---: |" * len(ks))
        for b in bs:
            cells = []
            for k in ks:
                group = [e for e in es if e["batch"] == b and e["K"] == k]
                cells.append(cell(group, grid["budget_gib"]) if group else "")
            out.append(f"| {b} | " + " | ".join(cells) + " |")
        out.append("")
    out += ["## Every run", "",
            "| run | method | batch | K | seed | status | test NDCG@10 | test HR@10 | val NDCG@10 | epochs | s/epoch "
            "| step ms (median / p90) | rows/step | peak GiB measured / predicted | predicted step ms |",
            "| --- | --- | ---: | ---: | ---: | --- |" + " ---: |" * 9]
    for e in grid["runs"]:
        status = e["status"]
        if status == "oom" and e["oom"]:
            status += f" (epoch {e['oom'].get('epoch')}, step {e['oom'].get('step')})"
        step = "–" if e["step_ms"] is None else f"{num(e['step_ms'])} / {num(e['step_ms_p90'])}"
        out.append(
            f"| {e['id']} | {e['method']} | {e['batch']} | {k_label(e['K'])} | {e['seed']} | {status} "
            f"| {fmt(e['test_ndcg@10'], '.4f')} | {fmt(e['test_hr@10'], '.4f')} | {fmt(e['val_ndcg@10'], '.4f')} "
            f"| {e['epochs_run']} | {num(e['s_per_epoch'])} | {step} | {fmt(e['rows_per_step'], '.0f')} "
            f"| {gib(e['peak_mib'], '–')} / {gib(e['predicted_peak_mib'], '–')} "
            f"| {num(e['predicted_step_ms'])} |")
    if grid["notes"]:
        out += ["", "Notes:", ""] + [f"- {n}" for n in grid["notes"]]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------
# grid.svg: test NDCG@10 against K (log2), a line per (method, batch); OOM etc. hollow on a "no result" row.

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
DASHES = ["", "6 3", "2 3", "8 3 2 3", "1 2"]


def esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def nice_step(span, n=5):
    raw = span / n
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def svg(grid):
    W, H = 820, 480
    L, R, T, B = 70, 230, 56, 52
    row_y = T + 14  # the "no result" row (out of memory, timeout, failed)
    top = T + 36  # the NDCG area starts below it
    pw, bottom = W - L - R, H - B
    es = grid["runs"]
    ks = sorted({e["K"] for e in es if e["K"] > 0})
    has0 = any(e["K"] == 0 for e in es)
    lo, hi = (math.log2(ks[0]), math.log2(ks[-1])) if ks else (0.0, 0.0)
    if hi - lo < 1:
        lo, hi = lo - 1, hi + 1
    x0 = lo - 1.2 if has0 else lo - 0.4  # K 0 ("none") sits at lo - 0.8
    x1 = hi + 0.4

    def X(k):
        v = (lo - 0.8) if k == 0 else math.log2(k)
        return L + (v - x0) / (x1 - x0) * pw

    vals = [e["test_ndcg@10"] for e in es if e["status"] == "ok" and e["test_ndcg@10"] is not None]
    ymax = max(vals) * 1.1 if vals and max(vals) > 0 else 1.0
    ystep = nice_step(ymax)
    ymax = math.ceil(ymax / ystep - 1e-9) * ystep

    def Y(v):
        return bottom - v / ymax * (bottom - top)

    title = f"{grid['name']}: test NDCG@10 against negatives K ({grid['card'] or 'unknown card'}, budget " \
            f"{grid['budget_gib']:g} GiB)"
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{W / 2:.1f}" y="22" text-anchor="middle" font-size="14">{esc(title)}</text>']
    # Axes, grid lines, ticks.
    o.append(f'<line x1="{L}" y1="{bottom}" x2="{L + pw}" y2="{bottom}" stroke="black"/>')
    o.append(f'<line x1="{L}" y1="{top}" x2="{L}" y2="{bottom}" stroke="black"/>')
    n = int(round(ymax / ystep))
    for i in range(n + 1):
        v = i * ystep
        y = Y(v)
        o.append(f'<line x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.4g}</text>')
    e_lo, e_hi = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    every = max(1, math.ceil((e_hi - e_lo + 1) / 10))
    for p in range(e_lo, e_hi + 1, every):
        x = X(2**p)
        o.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="black"/>')
        o.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{2**p}</text>')
    if has0:
        x = X(0)
        o.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">none</text>')
        xs = (x + X(2**lo)) / 2
        o.append(f'<line x1="{xs:.1f}" y1="{top}" x2="{xs:.1f}" y2="{bottom}" stroke="#bbb" stroke-dasharray="3 3"/>')
    o.append(f'<text x="{L + pw / 2:.1f}" y="{H - 12}" text-anchor="middle">negatives K (log2; none: in-batch or '
             'full CE)</text>')
    o.append(f'<text transform="translate(16 {(top + bottom) / 2:.1f}) rotate(-90)" text-anchor="middle">'
             'test NDCG@10</text>')
    o.append(f'<line x1="{L}" y1="{row_y}" x2="{L + pw}" y2="{row_y}" stroke="#f3c0c0" stroke-width="14"/>')
    o.append(f'<text x="{L - 6}" y="{row_y + 4}" text-anchor="end" font-size="10">no result</text>')

    # Series: (method, batch); color by method, dash by batch.
    methods = series_methods(grid)
    batches = sorted({e["batch"] for e in es})
    series = []
    for m in methods:
        for b in batches:
            if any(e["method"] == m and e["batch"] == b for e in es):
                series.append((m, b))
    legend_y = T
    for si, (m, b) in enumerate(series):
        color = COLORS[methods.index(m) % len(COLORS)]
        dash = DASHES[batches.index(b) % len(DASHES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        jitter = (si - (len(series) - 1) / 2) * min(3.0, 16.0 / max(1, len(series)))
        mine = [e for e in es if e["method"] == m and e["batch"] == b]
        pts = []
        for k in sorted({e["K"] for e in mine}):
            nd = mean_of([e["test_ndcg@10"] for e in mine if e["K"] == k and e["status"] == "ok"])
            if nd is not None:
                pts.append((X(k) + jitter, Y(nd)))
        o.append(f'<g class="series" data-method="{esc(m)}" data-batch="{b}">')
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            o.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"{dash_attr}/>')
        for e in mine:
            if e["status"] == "missing":
                continue
            tip = f"{e['id']}: {e['status']}"
            if e["status"] == "ok" and e["test_ndcg@10"] is not None:
                tip += f", test NDCG@10 {e['test_ndcg@10']:.4f}, peak {gib(e['peak_mib'])} GiB"
                o.append(f'<circle class="run ok" cx="{X(e["K"]) + jitter:.1f}" cy="{Y(e["test_ndcg@10"]):.1f}" '
                         f'r="4" fill="{color}" stroke="{color}"><title>{esc(tip)}</title></circle>')
            elif e["status"] == "oom":
                o.append(f'<circle class="run oom" cx="{X(e["K"]) + jitter:.1f}" cy="{row_y}" r="4" fill="white" '
                         f'stroke="{color}" stroke-width="1.5"><title>{esc(tip)}</title></circle>')
            else:  # timeout, failed (or ok without a test result): a hollow square on the row
                cls = e["status"] if e["status"] != "ok" else "failed"
                o.append(f'<rect class="run {cls}" x="{X(e["K"]) + jitter - 3.5:.1f}" y="{row_y - 3.5}" width="7" '
                         f'height="7" fill="white" stroke="{color}" stroke-width="1.5"><title>{esc(tip)}</title>'
                         '</rect>')
        o.append("</g>")
        # Legend entry.
        lx, ly = W - R + 16, legend_y + 14 * si + 8
        o.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 26}" y2="{ly}" stroke="{color}" stroke-width="1.5"'
                 f'{dash_attr}/>')
        o.append(f'<circle cx="{lx + 13}" cy="{ly}" r="3" fill="{color}"/>')
        o.append(f'<text x="{lx + 32}" y="{ly + 4}">{esc(m)}, batch {b}</text>')
    ly = legend_y + 14 * len(series) + 16
    o.append(f'<circle cx="{W - R + 29}" cy="{ly}" r="4" fill="white" stroke="#555" stroke-width="1.5"/>')
    o.append(f'<text x="{W - R + 48}" y="{ly + 4}">out of memory (hollow)</text>')
    if any(e["status"] in ("timeout", "failed") for e in es):
        o.append(f'<rect x="{W - R + 25.5}" y="{ly + 14.5}" width="7" height="7" fill="white" stroke="#555" '
                 'stroke-width="1.5"/>')
        o.append(f'<text x="{W - R + 48}" y="{ly + 22}">timeout or failed</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


def main(argv=None):
    a = parse_args(sys.argv[1:] if argv is None else argv)
    runs = plan_runs(a)
    if not a.report_only:
        execute(a, runs)
    grid = build(a, runs)
    os.makedirs(a.out_dir, exist_ok=True)
    write_json(os.path.join(a.out_dir, "grid.json"), grid)
    with open(os.path.join(a.out_dir, "grid.md"), "w") as f:
        f.write(markdown(grid))
    with open(os.path.join(a.out_dir, "grid.svg"), "w") as f:
        f.write(svg(grid))
    # The runs that fit, as `ccekit plan --check` reads them: measured peak against the planner (each run its own
    # model: catalog and busiest step's fill); times are not compared (the grid's runs share the GPU).
    fits = [e for e in grid["runs"] if e["status"] == "ok" and e.get("peak_mib") and e.get("planned_model")]
    if fits:
        write_json(os.path.join(a.out_dir, "plan-check.json"), {
            "device": fits[0]["card"], "model": fits[0]["planned_model"],
            "runs": [{"config": e["planned_config"], "model": e["planned_model"], "stepMs": None,
                      "peakBytes": e["peak_mib"] * 2**20} for e in fits]})
    counts = {s: sum(e["status"] == s for e in grid["runs"]) for s in STATUSES}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items() if v)
    print(f"grid.py: {summary}; wrote {os.path.join(a.out_dir, 'grid.md')}, grid.json, grid.svg", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
