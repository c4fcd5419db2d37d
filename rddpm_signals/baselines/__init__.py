"""Classical baselines with the shared detector contract: robust PCA (principal component pursuit) and
smooth-sparse decomposition, matrix-profile discords (1D) and IsolationForest on raw samples (whole-sample
anomalies, no localisation). DDPM and AnoDDPM are :class:`rddpm_signals.RobustDiffusion` configurations
(``loss="mse", self_clean=False``; the same with ``noise="simplex"``; see :mod:`rddpm_signals.methods`)."""

from .discord import MatrixProfile
from .iforest import IsolationForestDetector
from .rpca import RPCA, pcp
from .ssd import SSD

__all__ = ["RPCA", "SSD", "MatrixProfile", "IsolationForestDetector", "pcp"]
