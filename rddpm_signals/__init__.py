"""rddpm-signals: robust denoising diffusion models that find and outline defects in contaminated industrial
signals — waveforms, spectrograms and images."""

from . import datasets, methods, metrics, thresholds
from .baselines import RPCA, SSD, IsolationForestDetector, MatrixProfile
from .detector import RobustDiffusion
from .methods import make_detector
from .model import AnomalyModel
from .persistence import load_detector
from .typicality import DenoisingTypicality

__version__ = "0.1.0"
__all__ = [
    "RobustDiffusion",
    "RPCA",
    "SSD",
    "MatrixProfile",
    "IsolationForestDetector",
    "AnomalyModel",
    "DenoisingTypicality",
    "make_detector",
    "load_detector",
    "datasets",
    "methods",
    "metrics",
    "thresholds",
    "__version__",
]
