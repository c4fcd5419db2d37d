"""rddpm-signals: robust denoising diffusion models that find and outline defects in contaminated industrial
signals — waveforms, spectrograms and images."""

from . import datasets, metrics, thresholds
from .baselines import RPCA, SSD
from .detector import RobustDiffusion

__version__ = "0.1.0"
__all__ = ["RobustDiffusion", "RPCA", "SSD", "datasets", "metrics", "thresholds", "__version__"]
