"""A character-level language model: an LSTM trained with truncated BPTT, then sampled.

The text is examples/data/the_lamplighter.txt (a 4 KB story in the public domain). It is cut
into overlapping windows of 100 characters; the model reads one-hot characters and predicts
the next one at every step: LSTM(vocab → 128, return_sequences) → TimeDistributed(Dense(128 →
vocab)), softmax cross-entropy averaged over steps, Adam 3e-3 with global-norm clipping at 1.
``fit(..., bptt_steps=25)`` runs each batch in four windows of 25 steps, carrying the state
and cutting the gradient between them. Every few epochs the model writes a sample, one
character at a time, its state carried from character to character (``initial_state``).

    OPENBLAS_NUM_THREADS=1 python examples/char_lm.py      # about 8 s of one core
    OPENBLAS_NUM_THREADS=1 python examples/char_lm.py --epochs 120 --temperature 0.5

One BLAS thread matters on a shared machine: with two, while other processes held the cores,
the same run took over 7 minutes (docs/recurrent.md, "BLAS threads on a busy machine").
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import chainrule as cr

TEXT = Path(__file__).resolve().parent / "data" / "the_lamplighter.txt"


def load_text(path=TEXT) -> tuple[str, list[str]]:
    text = Path(path).read_text(encoding="utf-8")
    return text, sorted(set(text))


def make_windows(codes: np.ndarray, length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Input windows of ``length`` character codes and, for each step, the code that follows."""
    starts = np.arange(0, len(codes) - length - 1, stride)
    inputs = np.stack([codes[s:s + length] for s in starts])
    targets = np.stack([codes[s + 1:s + length + 1] for s in starts])
    return inputs, targets


def one_hot(codes: np.ndarray, vocab: int) -> np.ndarray:
    return np.eye(vocab, dtype=np.float32)[codes]


def sample(net: cr.Sequential, chars: list[str], prompt: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """Continue ``prompt`` by ``length`` characters drawn from the model's softmax."""
    lstm, head = net.layers
    index = {c: i for i, c in enumerate(chars)}
    codes = np.array([index[c] for c in prompt])
    out = lstm.forward(one_hot(codes, len(chars))[None])        # read the prompt
    state, logits = lstm.state, head.forward(out)[0, -1]
    text = list(prompt)
    for _ in range(length):
        z = logits / temperature
        p = np.exp(z - z.max())
        code = rng.choice(len(chars), p=p / p.sum())
        text.append(chars[code])
        out = lstm.forward(one_hot(np.array([code]), len(chars))[None], initial_state=state)
        state, logits = lstm.state, head.forward(out)[0, -1]
    return "".join(text)


def main(epochs: int = 60, hidden: int = 128, seed: int = 0, temperature: float = 0.7,
         sample_every: int = 20) -> float:
    text, chars = load_text()
    index = {c: i for i, c in enumerate(chars)}
    codes = np.array([index[c] for c in text])
    inputs, targets = make_windows(codes, length=100, stride=50)
    X = one_hot(inputs, len(chars))
    print(f"{len(text)} characters, {len(chars)} distinct; {len(X)} windows of 100")
    net = cr.Sequential(cr.LSTM(len(chars), hidden, return_sequences=True, seed=seed),
                        cr.TimeDistributed(cr.Dense(hidden, len(chars), seed=seed + 1)))
    optimizer = cr.Adam(3e-3, clip_norm=1.0)
    rng = np.random.default_rng(seed)

    def report(epoch, logs):
        if (epoch + 1) % sample_every == 0:
            bits = logs["loss"] / np.log(2)
            print(f"epoch {epoch + 1}: loss {logs['loss']:.3f} nats ({bits:.2f} bits) per character")
            print("  " + sample(net, chars, "The ", 160, temperature, rng).replace("\n", " / "))

    start = time.perf_counter()
    hist = net.fit(X, targets, loss="crossentropy", optimizer=optimizer, epochs=epochs, batch_size=16,
                   seed=seed, bptt_steps=25, verbose=0, callbacks=[cr.LambdaCallback(on_epoch_end=report)])
    print(f"trained {epochs} epochs in {time.perf_counter() - start:.1f} s;"
          f" uniform guessing would score {np.log(len(chars)):.3f} nats")
    return hist.history["loss"][-1]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--temperature", type=float, default=0.7)
    args = parser.parse_args()
    main(args.epochs, args.hidden, args.seed, args.temperature)
