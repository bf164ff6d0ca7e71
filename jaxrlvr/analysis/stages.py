"""Re-export of the stage detector (:mod:`jaxrlvr.algos.stages`), which the trainer runs as a controller."""

from jaxrlvr.algos.stages import PlateauDiagnostics, detect_plateau_start, plateau_diagnostics

__all__ = ["PlateauDiagnostics", "detect_plateau_start", "plateau_diagnostics"]
