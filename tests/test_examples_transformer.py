"""examples/char_transformer.py: the character transformer trains, and beats the char-RNN on held-out text.

The runs hold BLAS to one thread when threadpoolctl is installed (as tests/test_recurrent_training.py
does): the products are small, and on a busy 2-core machine a two-thread BLAS call can wait a
scheduler slice for its second thread (the reduced run: about 1.5 s on one thread, 33 s on two
while other processes kept both cores busy). The arithmetic is the same either way.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))

import char_transformer as ct  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_blas_thread")   # (tests/conftest.py)


def data():
    text, chars = ct.load_text()
    index = {c: i for i, c in enumerate(chars)}
    train, held_out = ct.split(np.array([index[c] for c in text]))
    return train, held_out, len(chars)


def letter_frequencies_loss(train, held_out, vocab):
    """Held-out cross-entropy of a model that knows only how often each character occurs
    (add-½ smoothing): what a network that ignores the context can reach."""
    counts = np.bincount(train, minlength=vocab) + 0.5
    targets = ct.make_windows(held_out, ct.HELD_OUT_WINDOW, ct.HELD_OUT_WINDOW)[1]
    return float(-np.log(counts[targets] / counts.sum()).mean())


def test_held_out_windows_cover_the_last_tenth_of_the_text():
    train, held_out, vocab = data()
    assert len(train) + len(held_out) == len(ct.load_text()[0]) and len(held_out) == 439
    inputs, targets = ct.make_windows(held_out, ct.HELD_OUT_WINDOW, ct.HELD_OUT_WINDOW)
    np.testing.assert_array_equal(targets.ravel(), held_out[1:1 + targets.size])  # each character once
    np.testing.assert_array_equal(inputs[:, 1:], targets[:, :-1])


def test_a_small_transformer_learns_the_text_in_seconds():
    train, held_out, vocab = data()
    net = ct.train_transformer(train, vocab, epochs=2, stride=4, dim=32, heads=2, blocks=1)
    loss = ct.held_out_loss(net, held_out, vocab, one_hot_input=False)
    frequencies = letter_frequencies_loss(train, held_out, vocab)        # 2.95 nats
    assert frequencies < 0.8 * np.log(vocab)
    assert loss < frequencies - 0.3, (loss, frequencies)                 # it reads the context
    rng = np.random.default_rng(0)
    text = ct.sample(net, ct.load_text()[1], "The ", 40, 0.7, rng)
    assert text.startswith("The ") and len(text) == 44


def test_both_models_are_scored_the_same_way_at_a_reduced_size():
    train, held_out, vocab = data()
    lstm = ct.train_char_rnn(train, vocab, epochs=2, hidden=16)
    loss = ct.held_out_loss(lstm, held_out, vocab, one_hot_input=True)
    assert 0 < loss < 1.2 * np.log(vocab)


@pytest.mark.slow
def test_the_full_transformer_beats_the_char_rnn_on_held_out_text(capsys):
    scores = ct.main()
    out = capsys.readouterr().out
    assert "transformer" in out and "char-RNN (LSTM)" in out
    assert scores["transformer"] < scores["char-RNN (LSTM)"] - 0.05, scores
