"""Former name of :mod:`jaxrlvr.models.decoder` (one decoder now serves every family); kept so that existing
imports of the rotary helpers keep working. New code imports ``jaxrlvr.models.decoder``."""

from jaxrlvr.models.decoder import Decoder as Qwen2
from jaxrlvr.models.decoder import apply_rope, positions_from_mask, rope_tables

__all__ = ["Qwen2", "apply_rope", "positions_from_mask", "rope_tables"]
