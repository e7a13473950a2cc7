"""Helpers of the GPU scripts in bench/ that drive the emitted PyTorch package: timing, errors, cases, settings."""
import sys
import time

import torch

# The paper's settings (bench/settings.ts): N, V, K, D.
SETTINGS = {"beauty": (32768, 176450, 511, 256), "ml20m": (131072, 15405, 511, 256), "megamarket": (32768, 1661327, 255, 256),
            "zvuk": (131072, 893022, 2047, 256), "small-d": (65536, 100000, 511, 64)}

# Package checks: n, d, v, k, reduction, share_rows, drawn (in-kernel sampling), backend (triton: tile kernels
# where Triton serves the dtype; simt: Triton hidden).
PACKAGE_CASES = [
    (513, 64, 4099, 127, "mean", None, False, "simt"), (300, 256, 1009, 255, "sum", None, True, "simt"),
    (1000, 256, 20011, 255, "mean", 64, True, "triton"), (77, 40, 97, 33, "sum", 128, False, "triton"),
    (1000, 128, 5003, 127, "mean", 64, True, "simt"),
]
DTYPE_TOL = ((torch.float32, 1e-4), (torch.float16, 1e-3 + 2**-10), (torch.bfloat16, 1e-3 + 2**-8))


def rank_device(rank, world, device="cuda"):
    """(device, backend) of a torch.distributed rank: on CUDA its own GPU and NCCL where the host has at least
    `world` GPUs, else GPU 0 for every rank and gloo (NCCL refuses two ranks on one GPU); on the CPU gloo."""
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu"), "gloo"
    if torch.cuda.device_count() >= world:
        torch.cuda.set_device(rank)
        return torch.device("cuda", rank), "nccl"
    return torch.device("cuda", 0), "gloo"


def start(package_dir):
    """Make the emitted package importable, seed torch from the clock; returns (the CUDA device, its name)."""
    sys.path.insert(0, package_dir)
    torch.manual_seed(int(time.time()) % 100000)
    return torch.device("cuda"), torch.cuda.get_device_name()


def median_ms(fn, reps=10, warmup=3):
    """Run fn warmup times untimed, then reps times between CUDA events; the median in ms."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return sorted(ts)[len(ts) // 2]


def rel(a, b):
    """max|a - b| / max|b| in float64; inf when a has a non-finite value."""
    a, b = a.double().reshape(-1), b.double().reshape(-1)
    if not torch.isfinite(a).all():
        return float("inf")
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))


def bits(x):
    """The bit patterns of a float tensor (for bit-identity checks)."""
    return x.view(torch.int32 if x.dtype == torch.float32 else torch.int16)


def case_inputs(n, d, v, k, share, dtype, dev):
    """Random e, c, targets (15% ignored) and a negatives tensor ([N, K], or [G, K] when shared)."""
    e = (torch.randn(n, d, device=dev) * 2 / d**0.5).to(dtype)
    c = (torch.randn(v, d, device=dev) * 2 / d**0.5).to(dtype)
    t = torch.randint(0, v, (n,), device=dev)
    t[torch.rand(n, device=dev) < 0.15] = -100
    neg = torch.randint(0, v, (-(-n // share) if share else n, k), device=dev)
    return e, c, t, neg


def package_cases(tile, dev):
    """Every dtype × PACKAGE_CASES check with fresh inputs: (dtype, tol, row fields, (e, c, t, neg), loss kwargs).
    tile: the package's _tile module; its Triton path is hidden for the 'simt' cases and restored afterwards."""
    real = tile.available
    try:
        for dtype, tol in DTYPE_TOL:
            for n, d, v, k, reduction, share, drawn, backend in PACKAGE_CASES:
                tile.available = real if backend == "triton" else (lambda device, share, dtype=None: False)
                e, c, t, neg = case_inputs(n, d, v, k, share, dtype, dev)
                kw = dict(num_negatives=k, seed=2**33 + n) if drawn else dict(negatives=neg)
                fields = {"dtype": str(dtype), "N": n, "D": d, "V": v, "K": k, "reduction": reduction, "share_rows": share, "drawn": drawn, "backend": backend}
                yield dtype, tol, fields, (e, c, t, neg), dict(kw, reduction=reduction, share_rows=share)
    finally:
        tile.available = real
