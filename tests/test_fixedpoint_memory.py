"""Acceptance: an associative memory trained by Almeida–Pineda recurrent backpropagation."""

import numpy as np
import pytest

import chainrule as cr


def cues_of(patterns, n, rng, flips=7):
    """A stored pattern with ``flips`` of its 32 bits flipped (20 %, rounded up), and the pattern."""
    which = rng.integers(0, len(patterns), n)
    clean = patterns[which]
    flip = np.argsort(rng.random(clean.shape), axis=1)[:, :flips]
    cues = clean.copy()
    np.put_along_axis(cues, flip, -np.take_along_axis(cues, flip, axis=1), axis=1)
    return cues, clean


@pytest.mark.parametrize("seed", [0, 1])
def test_associative_memory_recalls_patterns_from_corrupted_cues(seed):
    rng = np.random.default_rng(seed)
    patterns = rng.choice([-1.0, 1.0], size=(4, 32))
    # 32 visible + 32 hidden units; the cue drives the visible units through a fixed identity
    layer = cr.FixedPointRNN(32, 64, n_out=32, method="rbp",
                             weight_in=np.hstack([np.eye(32), np.zeros((32, 32))]), seed=seed)
    layer.freeze("weight_in")
    net = cr.Sequential(layer)
    cues, clean = cues_of(patterns, 1500 * 32, rng)
    net.fit(cues, 0.9 * clean, loss="mse", optimizer=cr.Adam(3e-3), epochs=1, batch_size=32,
            shuffle=False, verbose=0)                       # 1,500 steps of fresh cues
    test_cues, test_clean = cues_of(patterns, 1000, np.random.default_rng(100 + seed))
    assert np.mean(np.sign(test_cues) == test_clean) < 0.79    # the cues alone
    correct = np.sign(net.predict(test_cues)) == test_clean
    assert correct.mean() >= 0.95
    assert correct.all(axis=1).mean() >= 0.85
