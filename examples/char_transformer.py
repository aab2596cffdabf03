"""A character-level transformer language model, scored against the char-RNN on held-out text.

The text is the one of examples/char_lm.py (examples/data/the_lamplighter.txt, 4,397
characters). Its last tenth is held out; both models learn from the first nine tenths only:

- the transformer: Embedding(vocab → 64) + PositionalEmbedding(32, 64) (started from the
  sinusoidal table, then learned), two pre-norm blocks
  Residual(LayerNorm, MultiHeadAttention(64, 4 heads, causal)), Residual(LayerNorm, Dense(64 →
  256), GELU, Dense(256 → 64)), each with dropout 0.2, then LayerNorm and Dense(64 → vocab);
  windows of 32 characters every 2 characters, Adam 3e-3 with global-norm clipping at 1 and a
  cosine schedule over 8 epochs, batch 32;
- the char-RNN: char_lm.py's model with its settings (LSTM(vocab → 128) and a Dense head,
  windows of 100 every 50, Adam 3e-3 clipped at 1, batch 16, bptt_steps=25, 60 epochs).

Both predict every next character of the held-out text cut into windows of 32 characters (each
prediction sees the characters before it in its window, up to 31, the same for both models),
scored by the same softmax cross-entropy per character, in nats (``loss="crossentropy"`` on
(n, T, vocab) logits and (n, T) character codes: every time step is a sample). The
transformer's settings were picked by looking at this held-out score (there is no third
split of so short a text); the char-RNN's are char_lm.py's own.

    OPENBLAS_NUM_THREADS=1 python examples/char_transformer.py         # both models, 30-70 s
    OPENBLAS_NUM_THREADS=1 python examples/char_transformer.py --no-rnn  # the transformer alone

Measured with one BLAS thread on a shared 2-core machine: held-out 1.647 nats per character
for the transformer (20-40 s of training) against 1.759 for the char-RNN (10-30 s) with numba
installed, 1.744 on the NumPy path (CHAINRULE_KERNELS=numpy: the LSTM's float32 tanh rounds
differently there, and 60 epochs of training carry the difference); seeds 1 and 2 give the
transformer 1.656 and 1.645. Uniform guessing scores 3.807.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import chainrule as cr

sys.path.insert(0, str(Path(__file__).resolve().parent))  # char_lm.py, beside this file
from char_lm import load_text, make_windows, one_hot  # noqa: E402

HELD_OUT_WINDOW = 32  # length of the held-out windows both models are scored on


def split(codes: np.ndarray, held_out: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The first (1 − held_out) of the text to learn from, the rest to score on."""
    cut = len(codes) - int(len(codes) * held_out)
    return codes[:cut], codes[cut:]


def transformer(vocab: int, dim: int = 64, heads: int = 4, blocks: int = 2, context: int = 32,
                dropout: float = 0.2, seed: int = 0) -> cr.Sequential:
    """Character ids (n, T) -> next-character logits (n, T, vocab), T <= context."""
    layers = [cr.Embedding(vocab, dim, seed=seed),
              cr.PositionalEmbedding(context, dim, init="sinusoidal"),
              cr.Dropout(dropout, seed=seed + 1)]
    for b in range(blocks):
        s = seed + 10 * (b + 1)
        layers += [
            cr.Residual(cr.LayerNorm(dim), cr.MultiHeadAttention(dim, heads, causal=True, seed=s),
                        cr.Dropout(dropout, seed=s + 1)),
            cr.Residual(cr.LayerNorm(dim), cr.Dense(dim, 4 * dim, seed=s + 2), cr.GELU(),
                        cr.Dense(4 * dim, dim, seed=s + 3), cr.Dropout(dropout, seed=s + 4)),
        ]
    layers += [cr.LayerNorm(dim), cr.Dense(dim, vocab, seed=seed + 2)]
    return cr.Sequential(*layers)


def train_transformer(train: np.ndarray, vocab: int, epochs: int = 8, stride: int = 2,
                      seed: int = 0, **sizes) -> cr.Sequential:
    net = transformer(vocab, seed=seed, **sizes)
    context = net.layers[1].max_len
    inputs, targets = make_windows(train, context, stride)
    optimizer = cr.Adam(3e-3, clip_norm=1.0, schedule=cr.CosineLR(epochs))
    net.fit(inputs, targets, loss="crossentropy", optimizer=optimizer, epochs=epochs, batch_size=32,
            seed=seed, verbose=0)
    return net


def train_char_rnn(train: np.ndarray, vocab: int, epochs: int = 60, hidden: int = 128,
                   seed: int = 0) -> cr.Sequential:
    """char_lm.py's model and settings, trained on ``train`` only."""
    inputs, targets = make_windows(train, length=100, stride=50)
    net = cr.Sequential(cr.LSTM(vocab, hidden, return_sequences=True, seed=seed),
                        cr.TimeDistributed(cr.Dense(hidden, vocab, seed=seed + 1)))
    net.fit(one_hot(inputs, vocab), targets, loss="crossentropy", optimizer=cr.Adam(3e-3, clip_norm=1.0),
            epochs=epochs, batch_size=16, seed=seed, bptt_steps=25, verbose=0)
    return net


def held_out_loss(net: cr.Sequential, held_out: np.ndarray, vocab: int, one_hot_input: bool) -> float:
    """Mean cross-entropy (nats) of every next character in windows of HELD_OUT_WINDOW."""
    inputs, targets = make_windows(held_out, HELD_OUT_WINDOW, HELD_OUT_WINDOW)
    X = one_hot(inputs, vocab) if one_hot_input else inputs
    return net.evaluate(X, targets, loss="crossentropy")["loss"]


def sample(net: cr.Sequential, chars: list[str], prompt: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """Continue ``prompt`` one character at a time, the model reading the last ``context`` ones."""
    context = net.layers[1].max_len
    index = {c: i for i, c in enumerate(chars)}
    codes = [index[c] for c in prompt]
    for _ in range(length):
        z = net.predict(np.array([codes[-context:]]))[0, -1] / temperature
        p = np.exp(z - z.max())
        codes.append(int(rng.choice(len(chars), p=p / p.sum())))
    return "".join(chars[c] for c in codes)


def main(epochs: int = 8, rnn: bool = True, seed: int = 0, temperature: float = 0.7) -> dict[str, float]:
    text, chars = load_text()
    index = {c: i for i, c in enumerate(chars)}
    train, held_out = split(np.array([index[c] for c in text]))
    vocab = len(chars)
    print(f"{len(text)} characters, {vocab} distinct; learning from {len(train)}, scoring on the"
          f" last {len(held_out)} in windows of {HELD_OUT_WINDOW}")
    scores = {}
    start = time.perf_counter()
    net = train_transformer(train, vocab, epochs=epochs, seed=seed)
    seconds = {"transformer": time.perf_counter() - start}
    scores["transformer"] = held_out_loss(net, held_out, vocab, one_hot_input=False)
    print("  " + sample(net, chars, "The ", 160, temperature, np.random.default_rng(seed)).replace("\n", " / "))
    if rnn:
        start = time.perf_counter()
        lstm = train_char_rnn(train, vocab, seed=seed)
        seconds["char-RNN (LSTM)"] = time.perf_counter() - start
        scores["char-RNN (LSTM)"] = held_out_loss(lstm, held_out, vocab, one_hot_input=True)
    print(f"{'model':<16} {'held-out nats/char':>18} {'bits/char':>9} {'train s':>8}")
    for name, loss in scores.items():
        print(f"{name:<16} {loss:18.3f} {loss / np.log(2):9.2f} {seconds[name]:8.1f}")
    print(f"{'uniform':<16} {np.log(vocab):18.3f} {np.log2(vocab):9.2f}")
    return scores


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--no-rnn", action="store_true", help="skip the char-RNN baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()
    main(args.epochs, not args.no_rnn, args.seed, args.temperature)
