"""Shared negatives on tensor cores: ccekit's emitted Triton tile kernels (tl.dot), when Triton is installed.
The same entry points as _cuda (one, forward, backward) with the same buffers and scalars; only the launch
differs. ccekit_torch falls back to _cuda's SIMT kernels where these do not serve."""
import functools
import importlib.util
import os

import torch

from . import _cuda
from ._cuda import _MANIFEST

_HERE = os.path.dirname(os.path.abspath(__file__))
_NAMES = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
_modules = {}
_ok = {}


def available(device, share, dtype=torch.float16):
    """Triton is installed, the package has tile kernels for this group size, and the storage is 16-bit (fp32
    tiles take IEEE fp32 products and much shared memory; the SIMT kernels serve them)."""
    if dtype not in (torch.float16, torch.bfloat16):
        return False
    key = (str(device), share)
    if key not in _ok:
        try:
            import triton  # noqa: F401

            tiles = _MANIFEST.get("tiles", [])
            _ok[key] = device.type == "cuda" and any(t["options"].get("share") == share for t in tiles)
        except ImportError:
            _ok[key] = False
    return _ok[key]


def _module(tile):
    """The tile kernel's emitted module (its jit function under tile["entry"], and as_args)."""
    if tile["file"] not in _modules:
        path = os.path.join(_HERE, "triton", tile["file"])
        spec = importlib.util.spec_from_file_location("ccekit_tile_" + tile["file"][:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _modules[tile["file"]] = mod
    return _modules[tile["file"]]


def available_sources(device, dtype, src):
    """Triton tile kernels serve this in-batch source (source_of's key) on this device and 16-bit storage."""
    if dtype not in (torch.float16, torch.bfloat16) or not src or not src[0]:
        return False
    key = (str(device), src)
    if key not in _ok:
        try:
            import triton  # noqa: F401

            tiles = _MANIFEST.get("tiles", [])
            _ok[key] = device.type == "cuda" and any(_cuda._source_key(t["options"]) == src for t in tiles)
        except ImportError:
            _ok[key] = False
    return _ok[key]


@functools.lru_cache(maxsize=256)
def _tile_for(pass_, name, sampling, kind, share, det, ndt, src=None):
    """The tile kernel of a kind of call (the manifest is scanned once for each)."""
    tiles = [t for t in _MANIFEST["tiles"]
             if _cuda.matches(t, pass_, name, sampling, kind, share, det, False, ndt, src)]
    if not tiles:
        raise _cuda.CcekitCudaError(f"the package has no {pass_} tile kernel for {name} {sampling} {kind} "
                                    f"({ndt}) negatives shared by {share} rows; re-emit it with this ccekit")
    return tiles[0]


def _launch_tile(pass_, e, negatives, logq, share, det, tensors, scalars, src=None):
    n, d = scalars["N"], e.shape[1]
    sampling = "uniform" if logq is None else "given"
    kind, ndt = _cuda._kind(negatives), _cuda._ndt(negatives)
    tile = _tile_for(pass_, _NAMES[e.dtype], sampling, kind, share, det, ndt, src)
    args = dict(scalars, **tensors)
    block_d = max(16, 1 << (d - 1).bit_length())
    warps, stages = tile["launch"]["wide" if d >= 128 else "narrow"]
    s = tile["schedule"]
    mod = _module(tile)
    kernel = getattr(mod, tile["entry"])
    # as_args: the seed words as int32 bit patterns, or Triton compiles a kernel for each kind of seed value.
    kwargs = mod.as_args(**{p["name"]: args.get(p["name"]) for p in tile["parameters"]})
    grid = (-(-n // s["rows"]),)
    with torch.cuda.device(e.device):
        # Large D: fewer pipeline stages when the tiles do not fit the device's shared memory.
        for st in range(stages, 0, -1):
            try:
                kernel[grid](**kwargs, BLOCK_R=s["rows"], BLOCK_D=block_d, BLOCK_C=s["samplesPerStep"],
                             num_warps=warps, num_stages=st)
                return
            except Exception as err:  # triton.runtime.errors.OutOfResources
                if "out of resource" not in str(err) or st == 1:
                    raise


def one(*args, **kw):
    return _cuda.one(*args, run=_launch_tile, **kw)


def forward(*args, **kw):
    return _cuda.forward(*args, run=_launch_tile, **kw)


def backward(*args, **kw):
    return _cuda.backward(*args, run=_launch_tile, **kw)
