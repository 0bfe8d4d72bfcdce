"""Conv-M compact network and unified unsupervised domain adaptation (Wu et al., CVPR 2017).

    from dnnrepro.conv_m_da import ConvM, compact_net, adapt
    net = compact_net(10, size="small", in_channels=1)
    result = adapt(net, (xs, ys), xt, method="ours", target_test=(xt_test, yt_test))
    result.metrics["target_test_accuracy"]

In your own loop: ``AdaptationNet(backbone, feature_dim, num_classes, ...)`` and
``AdaptationObjective(...)(model, xs, ys, xt, step)`` (see :mod:`dnnrepro.conv_m_da.method`).

Architecture details and the loss combination are reconstructions (no public code or layer
table exists); see the README.
"""

__version__ = "0.2.0"

from .adapt import METHODS, SELECTIONS, AdaptConfig, AdaptResult, adapt  # noqa: E402
from .backbones import ResNetBackbone, torchvision_resnet  # noqa: E402
from .convm import ConvM  # noqa: E402
from .losses import (  # noqa: E402
    DomainDiscriminator,
    GradientReversal,
    conditional_map,
    entropy_loss,
    mk_mmd,
    reverse_gradient,
    warm_start_coeff,
)
from .method import AdaptationNet, AdaptationObjective, adabn  # noqa: E402
from .networks import (  # noqa: E402
    ConvNet,
    Fire,
    Inception,
    build_network,
    compact_net,
    inception_like,
    macs,
    squeeze_net_like,
)
from .tasks import TASKS, load_task, resize  # noqa: E402
from .validators import (  # noqa: E402
    VALIDATORS,
    information_maximization,
    soft_neighborhood_density,
    validator_score,
)

__all__ = [
    "METHODS",
    "SELECTIONS",
    "TASKS",
    "VALIDATORS",
    "AdaptConfig",
    "AdaptResult",
    "AdaptationNet",
    "AdaptationObjective",
    "ConvM",
    "ConvNet",
    "DomainDiscriminator",
    "Fire",
    "GradientReversal",
    "Inception",
    "ResNetBackbone",
    "adabn",
    "adapt",
    "build_network",
    "compact_net",
    "conditional_map",
    "entropy_loss",
    "inception_like",
    "information_maximization",
    "load_task",
    "macs",
    "mk_mmd",
    "resize",
    "reverse_gradient",
    "soft_neighborhood_density",
    "squeeze_net_like",
    "torchvision_resnet",
    "validator_score",
    "warm_start_coeff",
]
