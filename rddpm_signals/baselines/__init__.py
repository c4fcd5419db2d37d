"""Classical baselines with the shared detector contract: robust PCA (principal component pursuit) and
smooth-sparse decomposition. DDPM and AnoDDPM are :class:`rddpm_signals.RobustDiffusion` configurations
(``loss="mse"``; ``loss="mse", noise="simplex"``)."""

from .rpca import RPCA, pcp
from .ssd import SSD

__all__ = ["RPCA", "SSD", "pcp"]
