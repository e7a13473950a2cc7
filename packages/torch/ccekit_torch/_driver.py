"""The CUDA driver API and NVRTC through ctypes: emitted CUDA C++ kernels compiled at first use and launched on
PyTorch's current stream (no build step, no extension)."""
import ctypes
import glob
import os

import torch

_HERE = os.path.dirname(os.path.abspath(__file__))


class CcekitCudaError(RuntimeError):
    pass


def _load(names, what):
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise CcekitCudaError(f"{what}: none of {names} could be loaded")


def _nvrtc_candidates():
    out = []
    for home in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if home:
            out += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")), key=len)
    tdir = os.path.dirname(torch.__file__)
    out += sorted(glob.glob(os.path.join(tdir, "lib", "libnvrtc*.so*")), key=len)
    out += sorted(glob.glob(os.path.join(os.path.dirname(tdir), "nvidia", "cu*", "lib", "libnvrtc.so*")), key=len)
    nvrtc_lib = os.path.join(os.path.dirname(tdir), "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so*")
    out += sorted(glob.glob(nvrtc_lib), key=len)
    return out + ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"]


_cu = None
_nvrtc = None
_modules = {}
_ok = {}


def _check(call, res):
    if res != 0:
        name = ctypes.c_char_p()
        _cu.cuGetErrorName(res, ctypes.byref(name))
        raise CcekitCudaError(f"{call} failed: {(name.value or b'?').decode()} ({res})")


def _nvrtc_check(call, res, prog=None):
    if res != 0:
        log = ""
        if prog is not None:
            size = ctypes.c_size_t()
            _nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            _nvrtc.nvrtcGetProgramLog(prog, buf)
            log = buf.value.decode(errors="replace")
        _nvrtc.nvrtcGetErrorString.restype = ctypes.c_char_p
        raise CcekitCudaError(f"{call} failed: {_nvrtc.nvrtcGetErrorString(res).decode()} ({res})\n{log}")


def available(device):
    """True when the driver and NVRTC load and the device is an NVIDIA GPU."""
    global _cu, _nvrtc
    key = str(device)
    if key in _ok:
        return _ok[key]
    try:
        if _cu is None:
            _cu = _load(["libcuda.so.1", "libcuda.so"], "CUDA driver")
            _nvrtc = _load(_nvrtc_candidates(), "NVRTC")
        _ok[key] = torch.version.cuda is not None and device.type == "cuda"
    except CcekitCudaError:
        _ok[key] = False
    return _ok[key]


def _arch(device):
    major, minor = torch.cuda.get_device_capability(device)
    return major, minor


def _compile(source, name, device, exact_d=False):
    major, minor = _arch(device)
    vmaj, vmin = ctypes.c_int(), ctypes.c_int()
    _nvrtc.nvrtcVersion(ctypes.byref(vmaj), ctypes.byref(vmin))
    suffix = "a" if (major, minor) == (9, 0) else ""
    vec = 1 if (vmaj.value, vmin.value) >= (12, 1) else 0
    prog = ctypes.c_void_p()
    res = _nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    _nvrtc_check("nvrtcCreateProgram", res)
    for arch, kind in ((f"sm_{major}{minor}{suffix}", "cubin"), (f"compute_{major}{minor}", "ptx")):
        opts = [f"--gpu-architecture={arch}".encode(), b"-default-device", f"-DCCEKIT_VEC_ATOMICS={vec}".encode()]
        opts += [b"-DCCEKIT_EXACT_D"] if exact_d else []
        arr = (ctypes.c_char_p * len(opts))(*opts)
        res = _nvrtc.nvrtcCompileProgram(prog, len(opts), arr)
        if res != 0 and kind == "cubin":
            continue  # an older NVRTC that does not know this arch: fall back to PTX for the driver to JIT
        _nvrtc_check("nvrtcCompileProgram", res, prog)
        size = ctypes.c_size_t()
        if kind == "cubin":
            _nvrtc_check("nvrtcGetCUBINSize", _nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size)))
            image = ctypes.create_string_buffer(size.value)
            _nvrtc_check("nvrtcGetCUBIN", _nvrtc.nvrtcGetCUBIN(prog, image))
        else:
            _nvrtc_check("nvrtcGetPTXSize", _nvrtc.nvrtcGetPTXSize(prog, ctypes.byref(size)))
            image = ctypes.create_string_buffer(size.value)
            _nvrtc_check("nvrtcGetPTX", _nvrtc.nvrtcGetPTX(prog, image))
        _nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))
        return image
    raise CcekitCudaError("unreachable")


def _function(kernel, device, exact_d=False):
    """The kernel's function on this device; exact_d: D equals its BLOCK_D, compiled without element guards."""
    key = (kernel["file"], str(device), exact_d)
    if key not in _modules:
        torch.cuda.init()
        with torch.cuda.device(device):
            torch.cuda.current_stream(device)  # makes torch's primary context current on this thread
            ctx = ctypes.c_void_p()
            _check("cuCtxGetCurrent", _cu.cuCtxGetCurrent(ctypes.byref(ctx)))
            if not ctx.value:
                dev = ctypes.c_int()
                _check("cuDeviceGet", _cu.cuDeviceGet(ctypes.byref(dev), device.index or 0))
                _check("cuDevicePrimaryCtxRetain", _cu.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev))
                _check("cuCtxSetCurrent", _cu.cuCtxSetCurrent(ctx))
            with open(os.path.join(_HERE, "kernels", kernel["file"])) as f:
                image = _compile(f.read(), kernel["file"], device, exact_d)
            module = ctypes.c_void_p()
            _check("cuModuleLoadData", _cu.cuModuleLoadData(ctypes.byref(module), image))
            fn = ctypes.c_void_p()
            _check("cuModuleGetFunction", _cu.cuModuleGetFunction(ctypes.byref(fn), module, kernel["entry"].encode()))
            _modules[key] = fn
    return _modules[key]


def serves(kernel, d):
    """Whether a kernel computes vectors of length d: its vector width divides d (vector loads move whole groups
    of vec elements) and BLOCK_D = lanes * vec * dChunks >= d. The condition of dsl/schedule.ts's schedule check
    for a D (checkScheduleForD), restated here in Python."""
    s = kernel["schedule"]
    return s["lanes"] * s["vec"] * s["dChunks"] >= d and d % s["vec"] == 0


_layouts = {}


def _layout(kernel):
    """The kernel's parameters as (is a tensor, name, ctypes type), in launch order (made once a kernel)."""
    key = kernel["file"]
    if key not in _layouts:
        types = {"f32": ctypes.c_float, "u32": ctypes.c_uint32}
        _layouts[key] = [(p["kind"] == "tensor", p["name"],
                          ctypes.c_uint64 if p["kind"] == "tensor" else types.get(p["dtype"], ctypes.c_int32))
                         for p in kernel["parameters"]]
    return _layouts[key]


def launch(kernel, device, rows, tensors, scalars, any_d=False):
    """One launch over `rows` rows of the kernel's row dimension, on the current stream. Tensors and scalars by
    parameter name (a tensor absent from `tensors` is a null pointer). any_d: a kernel that holds no embeddings
    (one schedule for every D)."""
    if not any_d and not serves(kernel, scalars["D"]):
        # Never launched: a schedule whose vec does not divide D, or whose BLOCK_D is short of D, miscomputes.
        raise CcekitCudaError(f"{kernel['file']}: its schedule does not serve D={scalars['D']}")
    fn = _function(kernel, device, scalars.get("D") == kernel["launch"]["blockD"])
    holders = []
    for tensor, name, ctype in _layout(kernel):
        if tensor:
            t = tensors.get(name)
            holders.append(ctype(t.data_ptr() if t is not None else 0))
        else:
            v = scalars[name]
            holders.append(ctype(v if ctype is ctypes.c_float else int(v)))
    params = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
    s = kernel["schedule"]
    grid = (rows + s["rows"] - 1) // s["rows"]
    stream = ctypes.c_void_p(torch.cuda.current_stream(device).cuda_stream)
    threads = kernel["launch"]["threadsPerProgram"]
    res = _cu.cuLaunchKernel(fn, grid, 1, 1, threads, 1, 1, 0, stream, params, None)
    _check(f"cuLaunchKernel({kernel['entry']})", res)

