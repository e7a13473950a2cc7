"""ccekit_torch: CCE- (cross-entropy with negative sampling, no materialized logits) for PyTorch.

Written by `ccekit emit --target torch` with the emitted kernels and manifest.json; the version is the ccekit
code generator's that emitted them (manifest.json's "version").
"""
import json as _json
import os as _os

from .loss import CceMinusFunction, cce_minus_loss, reference_cce_minus_loss

with open(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "manifest.json")) as _f:
    __version__ = _json.load(_f)["version"]

__all__ = ["cce_minus_loss", "CceMinusFunction", "reference_cce_minus_loss"]
