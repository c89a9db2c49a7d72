"""The CPU classes the precision-sensitive tests run under, and the mask agreement each precision implies."""

from __future__ import annotations

__all__ = ["CLASSES_BY_PRECISION", "mask_dice_floor"]

CLASSES_BY_PRECISION = {"bf16": "avx512-bf16", "fp32": "avx2"}
"""A CPU class (:data:`medico.engine.runtime.CPU_CLASSES`) of each default precision: bf16 computed natively, and
fp32 (an AVX2-only CPU, which also trains in NCHW): the two paths every precision-sensitive test takes."""

_BF16_FLOOR = 0.98
"""bf16 keeps 8 significant bits, and the logits of the tests' tiny untrained models crowd the threshold: their masks
at bf16 and fp32 agree at least this well (a trained attunet's agree at a mean Dice of 0.998 on Kvasir-SEG)."""


def mask_dice_floor(precision: str) -> float:
    """The least Dice expected between masks made at ``precision`` and at fp32 by the same weights: 1 for fp32 (the
    same arithmetic gives the same masks, in torch or an exported graph), :data:`_BF16_FLOOR` for bf16."""
    return 1.0 if precision == "fp32" else _BF16_FLOOR
