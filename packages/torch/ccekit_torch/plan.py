"""The training-step planner from Python: peak memory and step time of a SASRec step (model + loss + Adam) for a
(method, batch size, sequence length, negatives, sharing), and which configurations fit a memory budget.

    from ccekit_torch import plan
    plan.estimate({"V": 10**6, "D": 256, "maxLen": 200, "blocks": 2, "heads": 1},
                  {"method": "cce-per-row", "batch": 256, "seqLen": 200, "K": 512})
    plan.plan(40 * 2**30, model, [config, ...])      # fitting, Pareto front, recommended

The cost model is plan_model.json, written by `ccekit emit --target torch` from ccekit's runtime/costmodel.ts: the
same data `ccekit plan` evaluates, with its expressions as the trees ccekit parsed, its coefficient names and its
phases. Its coefficients come from a calibration (`ccekit plan --calibrate runs.json` stores plan-calibration.json
beside the tuning DB: $CCEKIT_CACHE, else ~/.cache/ccekit); without one, the model's first-principles defaults
(labelled "default", not measured).
Methods: ce-minus (PyTorch CE-), ce (full CE), cce-per-row, cce-shared, cce-in-batch, cce-mixed.
"""
import json
import math
import os

_HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(_HERE, "plan_model.json")) as _f:
    _PLAN = json.load(_f)
MODEL = _PLAN["model"]
DEFAULT_CALIBRATION = _PLAN["default_calibration"]
METHODS = tuple(MODEL["candidates"])


class PlanError(ValueError):
    """A bad planner argument; the message starts with the argument's name."""


def _eval(node, env):
    """An expression tree of plan_model.json (runtime/costmodel.ts parses them): a number, a name, or
    {"op": "+" | "*" | "^", "a": node, "b": node}."""
    if isinstance(node, (int, float)):
        return node
    if isinstance(node, str):
        if node not in env:
            raise ValueError(f"cost model: unknown name {node!r}")
        return env[node]
    a, b = _eval(node["a"], env), _eval(node["b"], env)
    return a + b if node["op"] == "+" else a * b if node["op"] == "*" else a ** b


def _expr(text, env):
    return float(_eval(_PLAN["trees"][text], env))


def _terms(terms, coefs, env):
    return sum(coefs.get(t["coef"], 0.0) * _expr(t["expr"], env) for t in terms)


def calibration_path():
    """plan-calibration.json beside the tuning DB: $CCEKIT_CACHE, else ~/.cache/ccekit."""
    d = os.environ.get("CCEKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ccekit")
    return os.path.join(d, "plan-calibration.json")


def load_calibration(path=None):
    """The calibration at `path`, else the stored one if there, else the defaults (source "default")."""
    path = path or (calibration_path() if os.path.exists(calibration_path()) else None)
    if path is None:
        return DEFAULT_CALIBRATION
    with open(path) as f:
        cal = json.load(f)
    coefs = cal.get("coefs") if isinstance(cal, dict) else None
    if not isinstance(coefs, dict):
        raise PlanError(f"calibration: {path} has no coefs object (an older or foreign file?)")
    for name in _PLAN["coefs"]:
        v = coefs.get(name)
        if v is None:
            raise PlanError(f"calibration: coefficient {name} is missing in {path} (made for an older cost model? "
                            "measure again and run ccekit plan --calibrate)")
        if not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
            raise PlanError(f"calibration: coefficient {name} in {path} must be a number >= 0, got {v}")
    return cal


def _round(x):
    return int(math.floor(x + 0.5))  # as JavaScript's Math.round


def _int(name, x, lo):
    if isinstance(x, bool) or not isinstance(x, int) or x < lo:
        raise PlanError(f"{name}: must be an integer >= {lo}, got {x!r}")


def estimate(model, config, calibration=None):
    """Peak bytes and step milliseconds of one configuration. model: V, D, maxLen, blocks, heads[, fill];
    config: method, batch, seqLen, K[, share]. calibration: a dict or a path (default: load_calibration())."""
    cal = calibration if isinstance(calibration, dict) else load_calibration(calibration)
    for name, lo in (("V", 2), ("D", 1), ("maxLen", 1), ("blocks", 0), ("heads", 1)):
        _int(name, model.get(name), lo)
    fill = model.get("fill", 1)
    if not (isinstance(fill, (int, float)) and 0 < fill <= 1):
        raise PlanError(f"fill: must be in (0, 1], got {fill!r}")
    method = config.get("method")
    if method not in METHODS:
        raise PlanError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    _int("batch", config.get("batch"), 1)
    _int("seqLen", config.get("seqLen"), 1)
    if config["seqLen"] > model["maxLen"]:
        raise PlanError(f"seqLen: {config['seqLen']} exceeds maxLen {model['maxLen']}")
    _int("K", config.get("K"), 0 if method in ("ce", "cce-in-batch") else 1)
    env = {"V": model["V"], "D": model["D"], "maxLen": model["maxLen"], "blocks": model["blocks"],
           "heads": model["heads"], "fill": fill, "B": config["batch"], "L": config["seqLen"], "K": config["K"],
           "share": config.get("share") or 0}
    env = {k: float(v) for k, v in env.items()}
    for name, e in MODEL["derived"]:
        env[name] = _expr(e, env)
    env["cands"] = _expr(MODEL["candidates"][method], env)
    k, mem, tm = cal["coefs"], MODEL["memory"], MODEL["time"]
    parts = {"params": _expr(mem["static"], env), "grads": _expr(mem["grads"], env),
             "activations": _terms(mem["activations"], k, env), "table": _terms(mem["table"], k, env),
             "loss": _terms(mem["loss"][method], k, env), "held": _terms(mem["held"][method], k, env),
             "optimizer": _terms(mem["optimizer"], k, env),
             "modelMs": _terms(tm["model"], k, env), "lossMs": _terms(tm["loss"][method], k, env)}
    # The phases (the loss's backward peak, the gradients forming, Adam's step) as the parts each adds up.
    phases = {p: sum(parts[part] for part in names) for p, names in mem["phases"].items()}
    return {"config": dict(config), "rows": _round(env["N"]), "candidates": _round(env["cands"]),
            "peakBytes": parts["params"] + max(phases["loss"], phases["grads"], phases["optimizer"]),
            "stepMs": parts["modelMs"] + parts["lossMs"], "parts": parts, "phases": phases}


def plan(budget_bytes, model, grid, calibration=None):
    """The configurations of `grid` that fit `budget_bytes`, their Pareto front (time a row down, candidates a row
    and rows a step up) and the recommendation (the most scored candidates a step within 1.5x of the best time a
    row), as `ccekit plan` chooses them."""
    if not (isinstance(budget_bytes, (int, float)) and 0 < budget_bytes < float("inf")):
        raise PlanError(f"budget: must be a positive number of bytes, got {budget_bytes!r}")
    if not grid:
        raise PlanError("grid: no configuration to plan")
    cal = calibration if isinstance(calibration, dict) else load_calibration(calibration)
    every = [estimate(model, c, cal) for c in grid]
    fitting = [e for e in every if e["peakBytes"] <= budget_bytes]
    if not fitting:
        least = min(every, key=lambda e: e["peakBytes"])
        raise PlanError(f"budget: {budget_bytes / 2**30:.2f} GiB fits none of the {len(every)} configurations; "
                        f"the smallest needs {least['peakBytes'] / 2**30:.2f} GiB ({least['config']})")

    def per_row(e):
        return e["stepMs"] / e["rows"]

    def better(b, a):
        return (per_row(b) <= per_row(a) and b["candidates"] >= a["candidates"] and b["rows"] >= a["rows"] and
                (per_row(b) < per_row(a) or b["candidates"] > a["candidates"] or b["rows"] > a["rows"]))

    front = [a for a in fitting if not any(b is not a and better(b, a) for b in fitting)]
    front.sort(key=lambda e: (per_row(e), e["peakBytes"]))
    fastest = min(per_row(e) for e in fitting)
    rec = None
    for e in (e for e in fitting if per_row(e) <= 1.5 * fastest):
        score, best = e["rows"] * e["candidates"], rec and rec["rows"] * rec["candidates"]
        if rec is None or score > best or (score == best and e["stepMs"] < rec["stepMs"]):
            rec = e
    return {"fitting": fitting, "front": front, "recommended": rec, "all": every, "calibration": cal}
