#!/usr/bin/env python3
"""One CCE- step side by side: the emitted PyTorch package (cce_minus_loss), PyTorch CE- on the same inputs, and the
same step through the Node runtime (`ccekit bench --device cuda`), at the settings of bench/settings.ts.

    python3 bench/side_by_side.py --package out/torch --node "bash scripts/device-run.sh" --out DIR \
        [--settings beauty,...] [--dtypes f16,bf16[,f32][,bf16:f32]] [--paths per_row_tensor,...] [--repeats 20]
        [--profile] [--shared-simt]
    python3 bench/side_by_side.py --package DIR --out DIR --dry-run    # tiny shapes on the CPU (plumbing only)

The package must carry kernels for the settings' D and dtypes (`ccekit emit --target torch --dtype all --out DIR`).
Paths: per_row_tensor (negatives as an [N, K] int32 index tensor), per_row_philox (num_negatives=K, seed: drawn in
the kernel), shared64 (share_rows=64, drawn in the kernel). Each step is fwd + torch.autograd.grad into E and C
(mean). The Node step compared is the one the package runs (its dc_by_item_default decides by item or fused per
row; shared 64: the fused SIMT kernels, which the package runs only where Triton is missing or --shared-simt).
Issue 14's memory goal is over f16, bf16 and fp32 item tables: --dtypes f16,bf16,f32 (or E:C such as bf16:f32,
an autocast-style fp32 table; the Node runtime then runs E's dtype).
Rows: JSON (side-by-side-<card>.json) and markdown (side-by-side-<card>.md) in --out, with the card's name, the
ratios package / Node kernel, PyTorch CE- / package and paper kernel / package, and issue 14's goal checks. The
JSON is rewritten after each setting, so a run that is cut off keeps what it finished."""
import argparse
import json
import math
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import side_by_side_node as node  # noqa: E402
import side_by_side_report as report  # noqa: E402
import side_by_side_steps as steps  # noqa: E402

# The f64 check of --dry-run (the package's CPU path): 16-bit dE and dC come back in their dtype, and dC is summed
# in it (the backward of the gather), a few roundings of 2^-9 (bf16) or 2^-12 (f16) of max|dC| each.
TOL = {"f32": 1e-4, "f16": 4e-3, "bf16": 2e-2}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--package", required=True, help="folder holding the emitted package (ccekit_torch/)")
    p.add_argument("--out", required=True, help="folder for the JSON and markdown (created if missing)")
    p.add_argument("--node", help="command prefix that runs the ccekit CLI, e.g. 'bash scripts/device-run.sh'")
    p.add_argument("--settings", default="", help="comma-separated names of bench/settings.ts (default: all)")
    p.add_argument("--dtypes", default="f16,bf16", help="comma list of f16, bf16, f32, or E:C (e.g. bf16:f32)")
    p.add_argument("--paths", default=",".join(steps.PATHS), help="comma list of %s" % ", ".join(steps.PATHS))
    p.add_argument("--repeats", type=int, default=20, help="timed steps (median, p20, p80)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch CE-")
    p.add_argument("--shared-simt", action="store_true",
                   help="shared 64 through the package's SIMT kernels (the Node runtime's) instead of Triton's")
    p.add_argument("--profile", action="store_true", help="torch.profiler: CUDA ms of ccekit's kernels vs others")
    p.add_argument("--paper", choices=["auto", "h200", "h100"], default="auto",
                   help="whose paper-kernel figures (auto: H100 on an H100, else H200)")
    p.add_argument("--node-timeout", type=int, default=1800, help="seconds for one Node bench command")
    p.add_argument("--dry-run", action="store_true", help="tiny shapes on the CPU: the script's plumbing only")
    p.add_argument("--merge", action="store_true",
                   help="keep the rows of an earlier run in --out (same card) that this run does not redo")
    a = p.parse_args(argv)
    if a.repeats < 1:
        p.error("--repeats: must be >= 1 (got %d)" % a.repeats)
    if a.warmup < 0:
        p.error("--warmup: must be >= 0 (got %d)" % a.warmup)
    if not os.path.isfile(os.path.join(a.package, "ccekit_torch", "__init__.py")):
        p.error("--package: %s has no ccekit_torch/__init__.py (emit it: ccekit emit --target torch --out DIR)"
                % a.package)
    try:
        a.dtype_list = steps.parse_dtypes(a.dtypes)
        a.path_list = [x.strip() for x in a.paths.split(",") if x.strip()]
        bad = [x for x in a.path_list if x not in steps.PATHS]
        if bad or not a.path_list:
            raise ValueError("--paths: unknown %s (known: %s)" % (", ".join(bad) or "(empty)", ", ".join(steps.PATHS)))
        all_settings, a.h100_paper = node.load_settings()
        a.setting_list = node.select_settings(node.DRY_SETTINGS if a.dry_run else all_settings, a.settings)
    except ValueError as exc:
        p.error(str(exc))
    return a


def log(msg):
    print(msg, flush=True)


def base_row(s, label, path, impl, card):
    return {"setting": s["name"], "N": s["N"], "V": s["V"], "K": s["K"], "D": s["D"], "dtype": label, "path": path,
            "impl": impl, "card": card}


def failure(exc):
    return "OOM" if steps.is_oom(exc) else "%s: %s" % (type(exc).__name__, (str(exc).splitlines() or [""])[0])


def run_package(a, cce_minus_loss, s, label, e, c, t, neg, card):
    """The package's rows of one setting and dtype (one per path); the per_row_tensor loss for the CE- check."""
    rows = []
    for path in a.path_list:
        row = base_row(s, label, path, report.PACKAGE, card)
        try:
            info = steps.package_step_info(path, e, c)
            row.update(package_step=info["step"], backend=info["backend"], by_item=info["by_item"])
            fwd = steps.package_forward(cce_minus_loss, path, e, c, t, neg, s["K"])
            row.update(steps.measure(fwd, e, c, a.warmup, a.repeats))
            if row["peak_mib"] is not None:
                row["extra_mib_beyond_grads"] = row["peak_mib"] - steps.grads_bytes(e, c) / steps.MIB
            if a.profile and e.is_cuda:
                row["profile"] = steps.profile(fwd, e, c)
            if a.dry_run and path == "per_row_tensor":
                errs = steps.check_f64(fwd, e, c, t, neg)
                tol = TOL[steps.short(e.dtype)]
                row["f64_check"] = dict(errs, tol=tol, ok=all(v <= tol for v in errs.values()))
        except Exception as exc:  # noqa: BLE001  (one row's failure is recorded; the others still run)
            row.update(ms=None, peak_mib=None, note=failure(exc))
        steps.free(e.device)
        rows.append(row)
        log("  package %-10s %-6s %-15s %s" % (s["name"], label, path, fmt(row)))
    return rows


def run_torch(a, s, label, e, c, t, neg, card, package_loss):
    row = base_row(s, label, "per_row_tensor", report.TORCH, card)
    fwd = None
    try:
        fwd, why = steps.ce_minus_plan(s, e, c, t, neg)
        if fwd is None:
            row.update(ms=None, peak_mib=None, note=why)
        else:
            row.update(steps.measure(fwd, e, c, a.warmup, a.repeats))
            if row["peak_mib"] is not None:
                row["extra_mib_beyond_grads"] = row["peak_mib"] - steps.grads_bytes(e, c) / steps.MIB
            if package_loss is not None and row["loss"] is not None:
                row["loss_rel_vs_package"] = abs(package_loss - row["loss"]) / max(abs(row["loss"]), 1e-30)
    except Exception as exc:  # noqa: BLE001
        row.update(ms=None, peak_mib=None, note=failure(exc))
    fwd = None
    steps.free(e.device)
    log("  torch   %-10s %-6s %-15s %s" % (s["name"], label, "per_row_tensor", fmt(row)))
    return row


def run_node_rows(a, pkg_rows, card):
    """The Node runtime's rows: the package rows grouped by the matched step's flags, one CLI run per group."""
    groups = {}
    for r in pkg_rows:
        flags, what = node.node_flags(r["path"], bool(r.get("by_item")))
        e_dtype = r["dtype"].split(":")[0]
        key = (node.node_dtype(e_dtype, r["dtype"].split(":")[-1]), tuple(flags))
        groups.setdefault(key, {"what": what, "rows": []})["rows"].append(r)
    out = []
    for (dtype, flags), g in groups.items():
        settings = [s for s in a.setting_list if any(r["setting"] == s["name"] for r in g["rows"])]
        found, err = node.run_node(a.node, settings, dtype, flags, a.repeats, a.node_timeout, log)
        for r in g["rows"]:
            shape = {"name": r["setting"], "N": r["N"], "V": r["V"], "K": r["K"], "D": r["D"]}
            row = base_row(shape, r["dtype"], r["path"], report.NODE, card)
            row.update(node_flags=" ".join(flags), node_dtype=dtype)
            r["node_step"] = g["what"]
            cli = found.get(r["setting"])
            if cli is None or cli.get("ms") is None:
                row.update(ms=None, peak_mib=None, note=err or (cli or {}).get("note") or "no row for this setting")
            else:
                row.update({k: cli.get(k) for k in ("ms", "p20", "p80", "fwd_ms", "bwd_ms", "schedule")})
                # The CLI's peak_mib is what the step allocates beyond the inputs and its fp32 dE / dC.
                row.update(peak_mib=None, extra_mib_beyond_grads=cli.get("peak_mib"), node_impl=cli.get("impl"),
                           node_card=cli.get("card"))
            out.append(row)
    return out


def fmt(row):
    if row.get("ms") is None:
        return "n/a (%s)" % row.get("note", "")
    mem = "" if row.get("peak_mib") is None else ", peak +%.1f MiB" % row["peak_mib"]
    return "%.3f ms (p20 %.3f, p80 %.3f)%s" % (row["ms"], row["p20"], row["p80"], mem)


def slug(card):
    return re.sub(r"[^a-z0-9]+", "-", card.lower()).strip("-") or "card"


def finite(x):
    """x with non-finite floats (a diverged loss, say) as None, so that the JSON stays strict."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def out_base(a, card):
    return os.path.join(a.out, "side-by-side-%s" % slug(card))


def earlier_rows(a, card):
    """With --merge: the rows of the JSON an earlier run wrote for this card (ratios are recomputed)."""
    path = out_base(a, card) + ".json"
    if not a.merge or not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["rows"]


def write(a, meta, rows, final):
    key = lambda r: (r["impl"], r["setting"], r["dtype"], r["path"])  # noqa: E731
    redone = {key(r) for r in rows}
    rows = [r for r in meta["earlier"] if key(r) not in redone] + rows
    rows = [finite(r) for r in report.add_ratios(rows, meta["paper_figures"])]
    goal_rows = report.goals(rows)
    base = out_base(a, meta["card"])
    doc = {"meta": {k: v for k, v in meta.items() if k not in ("paper_figures", "earlier")}, "rows": rows,
           "goals": goal_rows}
    with open(base + ".json", "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False, default=str)
        f.write("\n")
    if final:
        with open(base + ".md", "w") as f:
            f.write(report.markdown(rows, meta, goal_rows))
    return base, goal_rows


def main(argv=None):
    a = parse_args(argv)
    if not a.dry_run and not torch.cuda.is_available():
        print("side_by_side: CUDA is not available (use --dry-run for the CPU smoke run)", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    sys.path.insert(0, os.path.abspath(a.package))
    from ccekit_torch import cce_minus_loss  # noqa: E402

    if a.shared_simt and not steps.hide_tiles():
        print("side_by_side: --shared-simt: the package has no tile module", file=sys.stderr)
        return 2

    device = torch.device("cpu" if a.dry_run else "cuda")
    card = "cpu (dry run)" if a.dry_run else torch.cuda.get_device_name()
    seed = int(time.time() * 1000) % 2**31
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    figures, paper_label = node.paper_figures(card, a.paper, a.h100_paper)
    meta = {"card": card, "torch": torch.__version__, "seed": seed, "repeats": a.repeats, "warmup": a.warmup,
            "dry_run": a.dry_run, "node": a.node, "shared_simt": a.shared_simt, "paper": paper_label,
            "paper_figures": figures, "settings": a.setting_list, "earlier": earlier_rows(a, card)}
    log("side_by_side on %s, torch %s, seed %d" % (card, torch.__version__, seed))
    rows = []
    for s in a.setting_list:
        for label, e_dtype, c_dtype in a.dtype_list:
            e = c = t = neg = None
            try:
                e, c, t, neg = steps.make_inputs(s, e_dtype, c_dtype, device, gen)
                pkg = run_package(a, cce_minus_loss, s, label, e, c, t, neg, card)
                rows += pkg
                if not a.no_torch and "per_row_tensor" in a.path_list:
                    loss = next((r.get("loss") for r in pkg if r["path"] == "per_row_tensor"), None)
                    rows.append(run_torch(a, s, label, e, c, t, neg, card, loss))
            except Exception as exc:  # noqa: BLE001  (the inputs did not fit)
                for path in a.path_list:
                    rows.append(dict(base_row(s, label, path, report.PACKAGE, card), ms=None, peak_mib=None,
                                     note="inputs: %s" % failure(exc)))
            e = c = t = neg = None
            steps.free(device)
        write(a, meta, rows, False)
    if a.node:
        rows += run_node_rows(a, [r for r in rows if r["impl"] == report.PACKAGE], card)
    base, goal_rows = write(a, meta, rows, True)
    for g in goal_rows:
        log("goal %-10s %s" % (g["state"], g["goal"]))
    log("wrote %s.json and %s.md" % (base, base))
    return 0


if __name__ == "__main__":
    sys.exit(main())
