"""Position-based advantage shaping (Eq. 8 + 10 of "Decomposing the Entropy-Performance Exchange").

The DAPO baseline with A_t <- A_t + sign(A_t) b_t, b_t = gamma sigmoid(direction m (l_t - n)), gamma = 0.1
(the paper's), direction = +1, applied from step 200 for 100 steps (``train.position_window``: the
plateau stage, our choice of numbers). Default (m, n) = (15, +0.5) (``algos.POSITION_CENTRED``): the
paper's printed m = 15, n = -0.5 read as sigmoid(m (l + n)), a ramp from ~0 at the first token to ~gamma
at the last, which is what makes the direction matter (Fig. 7: entropy and response length change with it).

Presets (combine; ``model=NAME``, ``smoke`` as in dapo_baseline):
- ``reverse``: direction = -1 (early tokens get the bonus);
- ``paper``: the printed values taken literally in our convention (n = -0.5): sigmoid(r), r in [7.5, 22.5],
  is >= 0.99945, so the bonus is the constant +-gamma at every position and ``reverse`` makes it ~5e-4
  gamma: the shaping then only scales |A| up uniformly. Kept to show that reading;
- ``gamma_ablation``: gamma = 1.0, the ablation of Fig. 7;
- ``centred``: the default (accepted for old command lines);
- ``auto``: start the 100 steps when the stage detector (``jaxrlvr.algos.stages``: smoothed entropy and
  accuracy flatten) sees the plateau, instead of at step 200.
"""

from configs import dapo_baseline
from configs._smoke import parse_presets
from jaxrlvr.algos import POSITION_CENTRED, POSITION_PAPER


def get_config(arg: str | None = None):
    presets = parse_presets(arg, {"model", "smoke", "paper", "centred", "reverse", "auto", "gamma_ablation"})
    base_arg = ",".join(n if v is None else f"{n}={v}" for n, v in presets if n in ("model", "smoke"))
    c = dapo_baseline.get_config(base_arg)
    smoke = any(n == "smoke" for n, _ in presets)
    names = {n_ for n_, _ in presets}
    if {"paper", "centred"} <= names:
        raise ValueError("presets 'paper' and 'centred' conflict: both set algo.position_n; keep one")
    c.algo.position_shaping = True
    c.algo.position_gamma = 1.0 if "gamma_ablation" in names else 0.1
    c.algo.position_direction = -1.0 if "reverse" in names else 1.0
    m, n = POSITION_PAPER if "paper" in names else POSITION_CENTRED
    c.algo.position_m, c.algo.position_n = float(m), float(n)
    c.train.position_window = (1, 1) if smoke else (200, 100)
    c.train.position_auto = "auto" in names
    return c
