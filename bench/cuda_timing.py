"""Median CUDA-event time of a step, for the GPU scripts in bench/."""
import torch


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
