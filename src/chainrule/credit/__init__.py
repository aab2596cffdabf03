"""Credit assignment beyond backprop: feedback alignment, direct feedback alignment and
decoupled training with synthetic gradients, as rules a Sequential is trained by.

    net.fit(X, y, loss="crossentropy", optimizer=cr.Adam(1e-3), rule=cr.FeedbackAlignment(seed=0))

See docs/credit-assignment.md.
"""

from .base import Backprop, Block, CreditRule, LastLayerOnly, angle_degrees, cosine, split_blocks
from .diagnostics import angle_curves, final_angles, plot_alignment
from .dni import DNI, SyntheticGradient
from .feedback import DirectFeedbackAlignment, FeedbackAlignment
from .recurrent import RecurrentDNI
from .tasks import teacher_task

__all__ = [
    "Backprop", "Block", "CreditRule", "LastLayerOnly", "angle_degrees", "cosine", "split_blocks",
    "angle_curves", "final_angles", "plot_alignment",
    "DNI", "SyntheticGradient", "DirectFeedbackAlignment", "FeedbackAlignment", "RecurrentDNI",
    "teacher_task",
]
