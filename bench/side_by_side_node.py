"""Settings and the Node side of bench/side_by_side.py: the SETTINGS array of runtime/presets.ts (the one source of
truth for the shapes), the paper's anchor figures, and the same step timed through the Node runtime
(`ccekit bench --device cuda ...` as a subprocess, its --out JSON parsed)."""
import json
import os
import re
import shlex
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS_TS = os.path.join(HERE, "settings.ts")
PRESETS_TS = os.path.join(HERE, "..", "runtime", "presets.ts")

# Tiny shapes for --dry-run (CPU smoke mode): D = 64 so that a package emitted with --d-values 64 serves them.
DRY_SETTINGS = [
    {"name": "smoke-a", "N": 96, "V": 301, "K": 15, "D": 64},
    {"name": "smoke-b", "N": 70, "V": 129, "K": 7, "D": 64},
]

# The paper's Triton CCE- kernel on an H200 (fp16, fwd+bwd): ms and extra MiB, as issue 14 quotes them.
PAPER_H200 = {"beauty": (18.7, 256), "ml20m": (57.9, 1026), "megamarket": (10.4, 891), "zvuk": (302, 4098),
              "small-d": (9.94, 512)}


def _array_text(text, name):
    """The text between the brackets of `export const NAME ... = [ ... ];` (SETTINGS) or braces (ANCHORS)."""
    m = re.search(r"export const %s\b[^=]*=\s*([\[{])" % re.escape(name), text)
    if not m:
        raise ValueError("bench/settings.ts: no `export const %s = ...`" % name)
    open_ch = m.group(1)
    close_ch = "]" if open_ch == "[" else "}"
    depth, start = 0, m.end() - 1
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return text[start + 1:i]
    raise ValueError("bench/settings.ts: %s is not closed" % name)


def parse_settings(text):
    """The SETTINGS array of bench/settings.ts as a list of {name, N, V, K, D}, in its order."""
    body = _array_text(text, "SETTINGS")
    out = []
    for obj in re.findall(r"\{([^{}]*)\}", body):
        fields = dict(re.findall(r"(\w+)\s*:\s*('[^']*'|\"[^\"]*\"|\d+)", obj))
        missing = [k for k in ("name", "N", "V", "K", "D") if k not in fields]
        if missing:
            raise ValueError("bench/settings.ts: a SETTINGS entry lacks %s: {%s}" % (", ".join(missing), obj.strip()))
        row = {"name": fields["name"][1:-1]}
        row.update({k: int(fields[k]) for k in ("N", "V", "K", "D")})
        out.append(row)
    if not out:
        raise ValueError("bench/settings.ts: SETTINGS has no entries")
    return out


def parse_paper_anchors(text):
    """The paper kernel's figures of ANCHORS in bench/settings.ts (measured on an H100): name -> (ms, MiB)."""
    body = _array_text(text, "ANCHORS")
    pat = r"['\"]?([\w-]+)['\"]?\s*:\s*\{\s*paper\s*:\s*\{\s*ms\s*:\s*([\d.]+)\s*,\s*mib\s*:\s*([\d.]+)"
    return {m[0]: (float(m[1]), float(m[2])) for m in re.findall(pat, body)}


def load_settings(presets=PRESETS_TS, anchors=SETTINGS_TS):
    """SETTINGS of runtime/presets.ts (which bench/settings.ts re-exports) and ANCHORS of bench/settings.ts."""
    with open(presets) as f:
        shapes = f.read()
    with open(anchors) as f:
        text = f.read()
    return parse_settings(shapes), parse_paper_anchors(text)


def select_settings(all_settings, names_arg):
    """The settings named in a comma list (all when empty); a ValueError names the unknown ones."""
    if not names_arg:
        return list(all_settings)
    names = [s.strip() for s in names_arg.split(",") if s.strip()]
    known = {s["name"]: s for s in all_settings}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError("--settings: unknown %s (known: %s)" % (", ".join(unknown), ", ".join(known)))
    return [known[n] for n in names]


def paper_figures(card, choice, h100):
    """(name -> (ms, MiB), label) of the paper's kernel for the card: H200 figures (issue 14) or H100 (ANCHORS)."""
    if choice == "auto":
        choice = "h100" if "H100" in (card or "") else "h200"
    if choice == "h100":
        return h100, "paper kernel, H100 (bench/settings.ts ANCHORS), fp16"
    return dict(PAPER_H200), "paper kernel, H200 (issue 14), fp16"


# ----------------------------------------------------------------------------------------------------------
# The Node step matched to the package's


def node_flags(path, by_item):
    """`ccekit bench` flags of the step the package runs on a path, and its description.
    per row: by item (fused forward + dE, then dC reduced by item) where the package picks dc_by_item, else the
    fused kernel (dC by float atomics); shared 64: the fused SIMT shared kernels (the Node runtime has no
    Triton tile kernels)."""
    if path == "shared64":
        return ["--share", "64", "--negatives", "philox", "--fused"], "fused SIMT shared-64 kernel, in-kernel draws"
    neg = ["--negatives", "philox"] if path == "per_row_philox" else []
    src = "in-kernel draws" if neg else "index tensor"
    if by_item:
        return neg + ["--by-item"], "fused fwd+dE, dC by item (%s)" % src
    return neg + ["--fused"], "fused kernel, dC by float atomics (%s)" % src


def node_dtype(e_dtype, c_dtype):
    """The Node runtime takes one storage dtype for E and C: E's (the package converts C to it)."""
    return e_dtype


def run_node(prefix, settings, dtype, flags, repeats, timeout_s, log):
    """Run `PREFIX bench --device cuda --settings ... --dtype ... FLAGS --out FILE` once for these settings, in
    the repository root (where `bash scripts/device-run.sh` is found).
    Returns (name -> the CLI's row, None); or ({}, the error's first line) when the command fails."""
    fd, out = tempfile.mkstemp(prefix="ccekit-node-bench-", suffix=".json")
    os.close(fd)
    args = shlex.split(prefix) + ["bench", "--device", "cuda", "--settings", ",".join(s["name"] for s in settings),
                                  "--dtype", dtype, "--repeats", str(repeats)] + list(flags) + ["--out", out]
    log("node: %s" % " ".join(shlex.quote(a) for a in args))
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, cwd=os.path.dirname(HERE))
        if r.returncode != 0:
            tail = (r.stderr.strip() or r.stdout.strip() or "no output").splitlines()[-1]
            return {}, "node exit %d: %s" % (r.returncode, tail)
        with open(out) as f:
            rows = json.load(f)
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        return {}, "node: %s" % str(exc).splitlines()[0]
    finally:
        if os.path.exists(out):
            os.remove(out)
    if not isinstance(rows, list):
        return {}, "node: --out JSON is not a list of rows"
    return {r.get("setting"): r for r in rows if isinstance(r, dict)}, None
