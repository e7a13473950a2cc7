"""ccekit_torch: CCE- (cross-entropy with negative sampling, no materialized logits) for PyTorch.

Candidates of cce_minus_loss: drawn negatives (num_negatives=K or a negatives tensor; share_rows shares them per
group of rows), the batch's own targets (negatives="in-batch", or "in-batch-group" with share_rows; their q is
in_batch_probs or uniform), both at once (mixed: negatives="in-batch" with num_negatives=K), and loss rows picked
out of a larger e by positions= (masked objectives); see cce_minus_loss's docstring for the math.

Written by `ccekit emit --target torch` with the emitted kernels and manifest.json; the version is the ccekit
code generator's that emitted them (manifest.json's "version").
"""
import json as _json
import os as _os

from .loss import CceMinusFunction, cce_minus_loss, reference_cce_minus_loss

with open(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "manifest.json")) as _f:
    __version__ = _json.load(_f)["version"]

__all__ = ["cce_minus_loss", "CceMinusFunction", "reference_cce_minus_loss"]
