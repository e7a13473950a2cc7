"""The planner's methods (runtime/costmodel.ts PLAN_METHODS) as train.py runs them: method -> (--loss,
--negatives-mode or None for per-row, whether it takes --negatives K). Shared by grid.py and calibrate.py; no torch
import, so grid.py runs on the standard library alone."""

METHODS = {
    "ce": ("ce", None, False),
    "ce-minus": ("ce-minus", None, True),
    "cce-per-row": ("cce-minus", None, True),
    "cce-shared": ("cce-minus", "shared", True),
    "cce-in-batch": ("cce-minus", "in-batch", False),
    "cce-mixed": ("cce-minus", "mixed", True),
}
