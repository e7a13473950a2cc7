"""Ratios, goal checks and the markdown table of bench/side_by_side.py's rows."""

PACKAGE = "ccekit-torch-package"
NODE = "ccekit-node-cuda"
TORCH = "torch-ce-minus"
PATH_LABEL = {"per_row_tensor": "per row, index tensor", "per_row_philox": "per row, in-kernel",
              "shared64": "shared 64"}

# Issue 14's goals, read off the rows.
MAX_PACKAGE_OVER_KERNEL = 1.15
MIN_PAPER_OVER_PACKAGE = {"per_row_tensor": 3.0, "per_row_philox": 3.0, "shared64": 10.0}
MAX_EXTRA_MIB = 64.0


def _key(r):
    return (r["setting"], r["dtype"], r["path"])


def add_ratios(rows, paper):
    """Adds to each package row: node_ms, package_over_kernel (package ms / the Node step's kernel ms),
    torch_ms, torch_over_package, paper_ms, paper_over_package (the paper kernel's fp16 figure / package ms)."""
    node = {_key(r): r for r in rows if r["impl"] == NODE}
    torch_rows = {_key(r): r for r in rows if r["impl"] == TORCH}
    for r in rows:
        if r["impl"] != PACKAGE:
            continue
        ms = r.get("ms")
        n = node.get(_key(r))
        r["node_ms"] = n.get("ms") if n else None
        r["package_over_kernel"] = ms / r["node_ms"] if ms and r["node_ms"] else None
        t = torch_rows.get((r["setting"], r["dtype"], "per_row_tensor")) if r["path"] == "per_row_tensor" else None
        r["torch_ms"] = t.get("ms") if t else None
        r["torch_over_package"] = r["torch_ms"] / ms if ms and r["torch_ms"] else None
        p = paper.get(r["setting"])
        r["paper_ms"] = p[0] if p else None
        r["paper_over_package"] = p[0] / ms if p and ms else None
    return rows


def _goal(name, items):
    """items: (label, value or None, ok). PASS when every item has a value and passes; FAIL when one fails;
    INCOMPLETE when none fails but some lack a value."""
    fails = [lab for lab, v, ok in items if v is not None and not ok]
    missing = [lab for lab, v, _ in items if v is None]
    state = "FAIL" if fails else "INCOMPLETE" if missing or not items else "PASS"
    return {"goal": name, "state": state, "checked": len(items) - len(missing), "failing": fails,
            "missing": missing}


def goals(rows):
    pkg = [r for r in rows if r["impl"] == PACKAGE]
    lab = lambda r: "%s %s %s" % (r["setting"], r["dtype"], r["path"])  # noqa: E731
    g1 = [(lab(r), r.get("package_over_kernel"), (r.get("package_over_kernel") or 0) <= MAX_PACKAGE_OVER_KERNEL)
          for r in pkg]
    g2 = [(lab(r), r.get("paper_over_package"),
           (r.get("paper_over_package") or 0) >= MIN_PAPER_OVER_PACKAGE[r["path"]])
          for r in pkg if r.get("paper_ms") is not None]
    g3 = [(lab(r), r.get("extra_mib_beyond_grads"), (r.get("extra_mib_beyond_grads") or 0) <= MAX_EXTRA_MIB)
          for r in pkg]
    return [
        _goal("package within %.2fx of the same step's kernel time (every setting, dtype and path)"
              % MAX_PACKAGE_OVER_KERNEL, g1),
        _goal("per row >= 3x the paper's kernel, shared 64 >= 10x", g2),
        _goal("extra memory beyond inputs and returned gradients <= %.0f MiB" % MAX_EXTRA_MIB, g3),
    ]


def _f(x, fmt="%.2f"):
    return "n/a" if x is None else fmt % x


def markdown(rows, meta, goal_rows):
    """The report: the card, one table per dtype (package, Node step, PyTorch CE-, paper), the goals."""
    lines = ["# Side-by-side CCE- step: package, Node runtime, PyTorch CE-", "",
             "Card: **%s** (torch %s). fwd+bwd into E and C, mean reduction, median of %d timed steps after %d "
             "warm-up%s." % (meta["card"], meta["torch"], meta["repeats"], meta["warmup"],
                             "; CPU smoke run (--dry-run), not a benchmark" if meta["dry_run"] else ""),
             "Peak = allocated above the inputs, the returned dE and dC included; extra = peak minus the returned "
             "dE [N, D] and dC [V, D] in the inputs' dtypes. Node = `ccekit bench` of the matched step (kernel "
             "time; its extra excludes fp32 dE / dC). Paper: %s." % meta["paper"], ""]
    pkg = [r for r in rows if r["impl"] == PACKAGE]
    for dtype in sorted({r["dtype"] for r in pkg}, key=lambda d: [x["dtype"] for x in pkg].index(d)):
        lines += ["## %s" % dtype, "",
                  "| setting | path | package ms (p20-p80) | peak MiB | extra MiB | package step | Node step | "
                  "Node ms | package/kernel | CE- ms | CE-/package | paper ms | paper/package |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (x for x in pkg if x["dtype"] == dtype):
            spread = "" if r.get("ms") is None else " (%.2f-%.2f)" % (r["p20"], r["p80"])
            lines.append("| %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["setting"], PATH_LABEL[r["path"]], _f(r.get("ms")), spread, _f(r.get("peak_mib"), "%.1f"),
                _f(r.get("extra_mib_beyond_grads"), "%.1f"), r.get("package_step", ""), r.get("node_step", ""),
                _f(r.get("node_ms")), _f(r.get("package_over_kernel"), "%.3f"), _f(r.get("torch_ms")),
                _f(r.get("torch_over_package"), "%.1fx"), _f(r.get("paper_ms")),
                _f(r.get("paper_over_package"), "%.2fx")))
        lines.append("")
    notes = [r for r in rows if r.get("note")]
    if notes:
        lines += ["Notes:", ""] + ["- %s %s %s %s: %s" % (r["impl"], r["setting"], r["dtype"], r["path"], r["note"])
                                   for r in notes] + [""]
    prof = [r for r in pkg if r.get("profile")]
    if prof:
        lines += ["## Where the package's time goes (torch.profiler, CUDA ms per step)", "",
                  "| setting | dtype | path | ccekit kernels | other | largest others |", "|---|---|---|---|---|---|"]
        for r in prof:
            p = r["profile"]
            top = ", ".join("%s %.2f" % (o["name"][:40], o["ms"]) for o in p["top_other"][:3])
            lines.append("| %s | %s | %s | %.3f | %.3f | %s |" % (r["setting"], r["dtype"], PATH_LABEL[r["path"]],
                                                               p["ccekit_kernels_ms"], p["other_ms"], top))
        lines.append("")
    lines += ["## Goals", "", "| goal | state | rows checked | failing | missing |", "|---|---|---|---|---|"]
    for g in goal_rows:
        lines.append("| %s | %s | %d | %s | %s |" % (g["goal"], g["state"], g["checked"],
                                                     "; ".join(g["failing"]) or "-", "; ".join(g["missing"]) or "-"))
    return "\n".join(lines) + "\n"
