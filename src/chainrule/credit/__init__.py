"""Credit assignment beyond backprop: feedback alignment, direct feedback alignment and
decoupled training with synthetic gradients, as rules a Sequential is trained by.

    net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), rule=cr.FeedbackAlignment(seed=0))

See docs/credit-assignment.md.
"""

from .base import Backprop, Block, CreditRule, LastLayerOnly, angle_degrees, cosine, split_blocks
from .dni import DNI, SyntheticGradient
from .feedback import DirectFeedbackAlignment, FeedbackAlignment

__all__ = [
    "Backprop", "Block", "CreditRule", "LastLayerOnly", "angle_degrees", "cosine", "split_blocks",
    "DNI", "SyntheticGradient", "DirectFeedbackAlignment", "FeedbackAlignment",
]
