"""Checks of examples/sasrec/train.py's grid flags and of grid.py's tables on made-up reports (test/grid.test.ts).

    python3 test/support/grid_check.py            # the checks: one `ok   NAME` line each, `FAIL NAME: why` else
    python3 test/support/grid_check.py svg FILE   # the SVG parsed (ElementTree): root tag and its run markers, JSON

- out of memory in a training step (a loss that raises CUDA's error text on its 3rd call) stops the run and writes
  the report with status oom, the epoch and step, exit 0; another RuntimeError still propagates;
- --time-steps: one time a step, summarized over the steps after the first 10 (numpy's percentiles of those);
- --memory-budget-gib: <= 0 refused naming the flag, a note on the CPU, kept in the report with adam and status;
- grid.py --report-only over made-up reports (two seeds, an OOM cell, a timeout): cells, seeds' means, peaks, rows
  a step, markers.
"""

import contextlib
import io
import json
import math
import os
import random
import sys
import tempfile
import traceback
import xml.etree.ElementTree as ET

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SASREC = os.path.join(ROOT, "examples", "sasrec")
sys.path.insert(0, SASREC)

SVG_NS = "{http://www.w3.org/2000/svg}"


def svg_markers(path):
    root = ET.parse(path).getroot()
    markers = []
    for el in root.iter():
        cls = (el.get("class") or "").split()
        if cls[:1] == ["run"]:
            title = el.find(SVG_NS + "title")
            markers.append({"tag": el.tag.replace(SVG_NS, ""), "status": cls[1] if len(cls) > 1 else None,
                            "title": title.text if title is not None else None,
                            "cy": float(el.get("cy")) if el.get("cy") is not None else
                            float(el.get("y")) + float(el.get("height")) / 2})
    return {"root": root.tag, "markers": markers}


def write_data(path, users=60, items=80, seed=3):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for u in range(1, users + 1):
            n = rng.randint(4, 12)
            f.write(f"{u} " + " ".join(str(rng.randint(1, items)) for _ in range(n)) + "\n")


def run_train(argv):
    """train.main(argv) with stdout and stderr captured: (exit code, stdout, stderr)."""
    import train

    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = train.main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


TINY = ["--hidden", "8", "--maxlen", "10", "--blocks", "1", "--batch-size", "16", "--negatives", "4", "--no-progress",
        "--device", "cpu"]


def check_oom(tmp):
    import train

    data = os.path.join(tmp, "d.txt")
    write_data(data)
    real = train.make_loss
    calls = [0]

    def raising(*a, **k):
        fn = real(*a, **k)

        def loss(*x, **y):
            calls[0] += 1
            if calls[0] == 3 + 4:  # epoch 2 (4 steps an epoch: 60 users, batch 16), step 3
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)\nmore text")
            return fn(*x, **y)

        return loss

    train.make_loss = raising
    try:
        out = os.path.join(tmp, "oom.json")
        code, _, err = run_train(["--data", data, *TINY, "--epochs", "3", "--memory-budget-gib", "40", "--out", out])
    finally:
        train.make_loss = real
    assert code == 0, f"exit {code}: {err}"
    r = json.load(open(out))
    assert r["status"] == "oom", r["status"]
    o = r["oom"]
    assert (o["epoch"], o["step"], o["phase"]) == (2, 3, "train"), o
    assert o["message"] == "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0)", o["message"]
    assert len(r["epochs"]) == 1 and r["test"] is None, (r["epochs"], r["test"])
    assert "out of memory in epoch 2 step 3" in err, err
    assert r["memory_budget_gib"] == 40.0 and r["peak_mem_mib"] is None, r

    # Any other RuntimeError is no OOM: it propagates.
    def broken(*a, **k):
        def loss(*x, **y):
            raise RuntimeError("shape mismatch")

        return loss

    train.make_loss = broken
    try:
        run_train(["--data", data, *TINY, "--epochs", "1", "--out", os.path.join(tmp, "x.json")])
        raise AssertionError("a RuntimeError without 'out of memory' did not propagate")
    except RuntimeError as exc:
        assert "shape mismatch" in str(exc)
    finally:
        train.make_loss = real
    assert not os.path.exists(os.path.join(tmp, "x.json"))
    oom_type = getattr(train.torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None:
        assert train.is_oom(oom_type("anything"))
    assert not train.is_oom(ValueError("out of memory"))
    return "oom report: epoch 2 step 3, exit 0; other errors propagate"


def check_time_steps(tmp):
    import train

    # The summary: numpy's percentiles of the steps after the first 10 (all of them when there are no more).
    rng = np.random.default_rng(0)
    for n in (1, 7, 10, 11, 57):
        xs = list(rng.exponential(5.0, n))
        s = train.step_summary(xs)
        use = xs[10:] if n > 10 else xs
        assert s["steps"] == len(use), (n, s)
        for key, q in (("median", 50), ("p90", 90)):
            assert math.isclose(s[key], float(np.percentile(use, q)), rel_tol=1e-12), (n, key, s[key])
    assert train.step_summary([]) is None

    data = os.path.join(tmp, "d.txt")
    write_data(data)
    seen = []
    real = train.step_summary
    train.step_summary = lambda ms, warmup=10: (seen.append(list(ms)), real(ms, warmup))[1]
    try:
        out = os.path.join(tmp, "t.json")
        code, _, err = run_train(["--data", data, *TINY, "--epochs", "3", "--time-steps", "--adam", "foreach",
                                  "--out", out])
    finally:
        train.step_summary = real
    assert code == 0, err
    r = json.load(open(out))
    steps = math.ceil(r["data"]["train_sequences"] / 16) * 3
    assert len(seen) == 1 and len(seen[0]) == steps, (steps, [len(x) for x in seen])
    assert all(x > 0 for x in seen[0])
    assert r["step_ms"] == real(seen[0]) and r["step_ms"]["steps"] == steps - 10, r["step_ms"]
    total_ms = sum(e["time_s"] for e in r["epochs"]) * 1e3
    assert sum(seen[0]) <= total_ms, (sum(seen[0]), total_ms)
    assert r["status"] == "ok" and r["oom"] is None and r["adam"] == "foreach", r

    code, _, err = run_train(["--data", data, *TINY, "--epochs", "1", "--out", out])
    r = json.load(open(out))
    assert code == 0 and r["step_ms"] is None and r["adam"] == "default" and r["memory_budget_gib"] is None, r
    return f"--time-steps: {steps} steps timed, summary of the last {steps - 10} = numpy's percentiles"


def check_budget(tmp):
    data = os.path.join(tmp, "d.txt")
    write_data(data)
    for bad in ("0", "-2"):
        code, _, err = run_train(["--data", data, "--memory-budget-gib", bad])
        lines = [x for x in err.splitlines() if "error" in x]
        assert code == 2 and len(lines) == 1 and "--memory-budget-gib" in lines[0], (code, err)
    code, _, err = run_train(["--data", data, *TINY, "--epochs", "1", "--memory-budget-gib", "12.5"])
    notes = [x for x in err.splitlines() if "--memory-budget-gib" in x]
    assert code == 0 and len(notes) == 1 and "not enforced" in notes[0], err
    return "--memory-budget-gib: <= 0 refused, a note on the CPU"


def fake_report(status, ndcg, peak, seed, batch, epochs=2, oom=None):
    """A train.py report as grid.py reads it (only the fields it uses)."""
    data = {"users": 1000, "items": 5000, "train_positions": 9000, "train_sequences": 900, "eval_users": 1000}
    r = {"status": status, "oom": oom, "args": {"seed": seed, "batch_size": batch, "hidden": 32, "maxlen": 20,
                                                 "blocks": 2, "heads": 1},
         "data": data, "device_name": "Made-up GPU", "memory_budget_gib": 40.0, "peak_mem_mib": peak,
         "epochs": [{"epoch": i + 1, "time_s": 2.0 + i} for i in range(epochs)], "step_ms": None}
    if status == "ok":
        r["best_val"] = {"ndcg@10": ndcg / 2, "hr@10": ndcg}
        r["test"] = {"ndcg@10": ndcg, "hr@10": 2 * ndcg}
    return r


def check_report_only(tmp):
    import grid

    out = os.path.join(tmp, "g")
    os.makedirs(os.path.join(out, "runs"))
    reports = {
        "f-ce-minus-b64-k16-s1": fake_report("ok", 0.0300, 1000.0, 1, 64),
        "f-ce-minus-b64-k16-s2": fake_report("ok", 0.0500, 3000.0, 2, 64),
        "f-ce-minus-b64-k64-s1": fake_report("oom", None, 40000.0, 1, 64, epochs=0,
                                             oom={"epoch": 1, "step": 5, "message": "CUDA out of memory."}),
        "f-ce-minus-b64-k64-s2": fake_report("oom", None, 40000.0, 2, 64, epochs=0,
                                             oom={"epoch": 1, "step": 2, "message": "CUDA out of memory."}),
        "f-ce-minus-b128-k16-s1": fake_report("ok", 0.0200, 2048.0, 1, 128),
        "f-ce-minus-b128-k16-s2": {"status": "timeout", "max_run_s": 5},
    }
    for rid, r in reports.items():
        with open(os.path.join(out, "runs", rid + ".json"), "w") as f:
            json.dump(r, f)
    argv = ["--name", "f", "--out-dir", out, "--losses", "ce-minus", "--batches", "64,128", "--negatives", "16,64",
            "--seeds", "1,2", "--ccekit-package", os.path.join(tmp, "none"), "--report-only"]
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        assert grid.main(argv) == 0
    g = json.load(open(os.path.join(out, "grid.json")))
    by = {e["id"]: e for e in g["runs"]}
    assert set(by) == set(reports) | {"f-ce-minus-b128-k64-s1", "f-ce-minus-b128-k64-s2"}, sorted(by)
    assert by["f-ce-minus-b128-k64-s1"]["status"] == "missing"
    assert by["f-ce-minus-b128-k16-s2"]["status"] == "timeout"
    e = by["f-ce-minus-b64-k16-s2"]
    assert e["rows_per_step"] == 9000 / math.ceil(900 / 64) and e["s_per_epoch"] == 2.5, e
    assert e["test_ndcg@10"] == 0.05 and e["val_ndcg@10"] == 0.025 and e["card"] == "Made-up GPU", e
    assert all(x["predicted_peak_mib"] is None for x in g["runs"]) and g["card"] == "Made-up GPU"

    md = open(os.path.join(out, "grid.md")).read()
    assert md.startswith("# SASRec grid f: Made-up GPU, budget 40 GiB"), md.splitlines()[0]
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]]
            for ln in md.split("## ce-minus")[1].split("## Every run")[0].splitlines() if ln.startswith("| ")}
    assert rows["batch \\ K"] == ["16", "64"], rows
    # Seeds 1 and 2: mean NDCG 0.04, the larger peak 3000 MiB = 2.93 GiB.
    assert rows["64"][0] == "0.0400 / 2.93 GiB (2 seeds)", rows["64"]
    assert rows["64"][1] == "does not fit (OOM at 40 GiB)", rows["64"]
    assert rows["128"][0].startswith("0.0200 / 2 GiB") and "timeout" in rows["128"][0], rows["128"]
    assert rows["128"][1] == "missing", rows["128"]
    every = [ln for ln in md.split("## Every run")[1].splitlines() if ln.startswith("| f-")]
    assert len(every) == 8 and any("oom (epoch 1, step 5)" in ln for ln in every), every

    s = svg_markers(os.path.join(out, "grid.svg"))
    assert s["root"] == SVG_NS + "svg", s["root"]
    kinds = sorted(m["status"] for m in s["markers"])
    assert kinds == ["ok", "ok", "ok", "oom", "oom", "timeout"], kinds
    hollow = {m["cy"] for m in s["markers"] if m["status"] in ("oom", "timeout")}
    filled = [m["cy"] for m in s["markers"] if m["status"] == "ok"]
    assert len(hollow) == 1 and min(filled) > next(iter(hollow)), (hollow, filled)  # the row above the plot
    # Higher NDCG is higher up: seed 2 (0.05) above seed 1 (0.03) above batch 128 (0.02).
    cy = {m["title"].split(":")[0]: m["cy"] for m in s["markers"] if m["status"] == "ok"}
    assert cy["f-ce-minus-b64-k16-s2"] < cy["f-ce-minus-b64-k16-s1"] < cy["f-ce-minus-b128-k16-s1"], cy
    return "grid.py --report-only: seeds' means, max peak, OOM cell, timeout, missing, markers"


def main(argv):
    if argv[:1] == ["svg"]:
        print(json.dumps(svg_markers(argv[1])))
        return 0
    failed = 0
    for check in (check_oom, check_time_steps, check_budget, check_report_only):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                print(f"ok   {check.__name__}: {check(tmp)}", flush=True)
            except Exception:
                failed += 1
                print(f"FAIL {check.__name__}: {traceback.format_exc()}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
