"""TrueNorth-constrained learning (Wen et al., DAC 2016) on the dnnrepro core."""

from .mapping import Core, CorePlan, map_to_cores
from .penalty import KINDS as PENALTY_KINDS
from .penalty import VariancePenalty
from .simulate import DeployResult, accuracy_grid, deploy, ensemble_accuracy, simulate_counts
from .tea import TeaLayer, TeaNet, TeaStage, build, digits_2core, mnist_5core
from .training import TeaTrainSpec, binary_fraction, mean_synapse_variance, train_tea

__version__ = "0.1.0"

__all__ = [
    "PENALTY_KINDS",
    "Core",
    "CorePlan",
    "DeployResult",
    "TeaLayer",
    "TeaNet",
    "TeaStage",
    "TeaTrainSpec",
    "VariancePenalty",
    "accuracy_grid",
    "binary_fraction",
    "build",
    "deploy",
    "digits_2core",
    "ensemble_accuracy",
    "map_to_cores",
    "mean_synapse_variance",
    "mnist_5core",
    "simulate_counts",
    "train_tea",
]
