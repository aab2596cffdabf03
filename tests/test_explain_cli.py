"""`chainrule explain`: the examples, a saved model with --input/--target, formats, files,
and the errors a user can make; plus the checks explain() makes on its arguments."""

from __future__ import annotations

import re

import numpy as np
import pytest

import chainrule as cr
from chainrule.cli import main
from chainrule.explain.examples import EXAMPLES


def run(capsys, *argv):
    code = main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_every_example_runs(capsys, name):
    code, out, err = run(capsys, "--example", name)
    assert code == 0 and err == ""
    assert "Forward pass" in out and "Backward pass" in out and "Update (η = " in out
    assert "every gradient agrees with its central difference" in out


def test_formats_and_out_file(capsys, tmp_path):
    for fmt, marker in (("markdown", "## Backward pass"), ("latex", r"\begin{align*}"), ("html", "<svg")):
        code, out, _ = run(capsys, "--example", "single-neuron", "--format", fmt)
        assert code == 0 and marker in out
    target = tmp_path / "mazur.html"
    code, out, err = run(capsys, "--example", "mazur", "--out", str(target))
    assert code == 0 and out == "" and "wrote" in err
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_steps_and_matrix_notation(capsys):
    code, out, _ = run(capsys, "--example", "xor", "--steps", "3", "--lr", "2", "--notation", "matrix")
    assert code == 0
    assert "Step 3 of 3" in out and "η = 2" in out and "δ² = dE/da² ∘ σ'(z²)" in out


def test_saved_model_with_input_and_target(capsys, tmp_path):
    net = cr.Sequential(cr.Dense(2, 2, weight=[[0.15, 0.25], [0.2, 0.3]], bias=[0.35, 0.35]), cr.Sigmoid(),
                        cr.Dense(2, 2, weight=[[0.4, 0.5], [0.45, 0.55]], bias=[0.6, 0.6]), cr.Sigmoid(),
                        dtype=np.float64)
    path = tmp_path / "mazur.npz"
    net.save(path)
    code, out, _ = run(capsys, str(path), "--input", "0.05,0.1", "--target", "0.01,0.99", "--lr", "0.5")
    assert code == 0
    assert "= 0.593269992\n" in out and "= 0.082167041\n" in out
    # biases are not frozen in this file, so they move too
    assert "b2_o1⁺ = b2_o1 - η·dE/db2_o1" in out
    code, out, _ = run(capsys, str(path), "--input", "0.05,0.1;0.2,0.3", "--target", "0.01,0.99;0.5,0.5",
                       "--loss", "mse")
    assert code == 0 and "sample 2 of 2" in out and "MSE" in out


def test_saved_classifier_with_a_label_and_a_scaler(capsys, tmp_path):
    net = cr.Sequential(cr.Dense(2, 3, seed=0), cr.Tanh(), cr.Dense(3, 3, seed=1), dtype=np.float64)
    net.scaler = cr.Standardizer().fit(np.array([[0.0, 10.0], [2.0, 30.0]]))
    path = tmp_path / "clf.npz"
    net.save(path)
    code, out, _ = run(capsys, str(path), "--input", "1,20", "--target", "2", "--loss", "crossentropy")
    assert code == 0
    assert "input scaled by the model's Standardizer" in out
    assert "p_o3 = " in out and "dE/dnet_o3 = p_o3 - target_o3" in out


@pytest.mark.parametrize("argv,message", [
    ((), "either --example"),
    (("--example", "mazur", "model.npz"), "either --example"),
    (("--example", "mazur", "--input", "1,2"), "--input and --target go with a saved MODEL"),
    (("nowhere.npz", "--input", "1,2", "--target", "1"), "no such file"),
    (("--example", "mazur", "--steps", "0"), "n_steps"),
])
def test_usage_errors_say_what_is_wrong(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == ""
    assert message in err


def test_bad_values_for_a_model(capsys, tmp_path):
    path = tmp_path / "m.npz"
    cr.Sequential(cr.Dense(2, 1, seed=0), cr.Sigmoid()).save(path)
    code, _, err = run(capsys, str(path), "--input", "0.1,abc", "--target", "1")
    assert code == 1 and "--input expects comma-separated numbers" in err
    code, _, err = run(capsys, str(path), "--input", "0.1,0.2,0.3", "--target", "1")
    assert code == 1 and "2 features" in err
    code, _, err = run(capsys, str(path), "--input", "0.1,0.2")
    assert code == 1 and "needs --input and --target" in err


def test_explain_checks_its_arguments():
    net = cr.Sequential(cr.Dense(2, 1, seed=0), cr.Sigmoid(), dtype=np.float64)
    with pytest.raises(cr.ConfigError, match="notation"):
        cr.explain(net, "sse", [0.1, 0.2], [0.5], notation="tensor")
    with pytest.raises(cr.ConfigError, match="needs a learning rate"):
        cr.explain(net, "sse", [0.1, 0.2], [0.5], n_steps=2)
    with pytest.raises(cr.ConfigError, match="digits"):
        cr.explain(net, "sse", [0.1, 0.2], [0.5], digits=0)
    with pytest.raises(cr.DataError, match="finite"):
        cr.explain(net, "sse", [0.1, np.nan], [0.5])
    with pytest.raises(cr.ConfigError, match="Dense layer first.*notation='matrix'"):
        cr.explain(cr.Sequential(cr.Sigmoid(), cr.Dense(2, 1)), "sse", [0.1, 0.2], [0.5], notation="scalar")
    # in matrix notation, layer by layer, any order of layers is written out
    assert cr.explain(cr.Sequential(cr.Sigmoid(), cr.Dense(2, 1)), "sse", [0.1, 0.2], [0.5]).notation == "matrix"
    with pytest.raises(cr.ConfigError, match="at most one activation"):
        cr.explain(cr.Sequential(cr.Dense(2, 1), cr.Sigmoid(), cr.Tanh()), "sse", [0.1, 0.2], [0.5], notation="scalar")


def test_dropout_is_skipped_and_said():
    net = cr.Sequential(cr.Dense(2, 2, seed=0), cr.Tanh(), cr.Dropout(0.5, seed=0), cr.Dense(2, 1, seed=1),
                        dtype=np.float64)
    trace = cr.explain(net, "mse", [0.3, 0.4], [0.2])
    assert any("Dropout" in line for line in trace.description)
    assert trace.max_relative_error < 1e-7
    assert trace.find("dE/dw5", section="check").key == (3, "weight", (0, 0))


# Finite-difference relative errors are rounding noise: their digits depend on the CPU's vector
# math (the exp kernel, the BLAS kernel, the thread count), so the page and the command may print
# different ones. They are checked against the bound the check itself uses (1e-7), never as text.
# Every other number in the pasted output (forward values, gradients, updates, errors, norms) is
# exact to the digits it is printed with and is compared as text: each lies at least 1e-12
# (relative) away from a rounding tie at its last printed digit, a thousand times the float64
# rounding noise of these few-hundred-operation computations.
NOISE_BOUND = 1e-7
_REL = r"\d\.\de[+-]\d+"
_NOISE = (re.compile(rf"(?m)^(largest relative error )({_REL})(:)"),        # the check's last line
          re.compile(rf"(?m)^(dE/d\S+ +\S+ +\S+ +)({_REL})( )"),         # check table: relative error
          re.compile(rf"(?m)^(\d+: .*  )({_REL})()$"))                      # layer summary: check column


def split_noise(text: str) -> tuple[str, list[float]]:
    """The text with each finite-difference relative error masked, and those errors."""
    found = []

    def mask(m):
        found.append(float(m.group(2)))
        return m.group(1) + "~" * len(m.group(2)) + m.group(3)

    for pattern in _NOISE:
        text = pattern.sub(mask, text)
    return text, found


def test_split_noise_masks_only_the_relative_errors():
    text = ("dE/dw3      0.000497713         0.000497713         1.2e-10  W¹[0, 1] = layers[0].weight[0, 1]\n"
            "dE/dw3 = dE/dout_h2 · dout_h2/dnet_h2 · dnet_h2/dw3 = 0.041370323 · 0.240613417 · 0.05 = 0.000497713\n"
            "largest relative error 1.2e-10: every gradient agrees with its central difference\n"
            "0: Dense + Sigmoid  64x32    4x32    6.59  0.0302    0.238   0.0276       0.00361  1.1e-09\n")
    masked, found = split_noise(text)
    assert found == [1.2e-10, 1.2e-10, 1.1e-09]
    assert "0.000497713         ~~~~~~~  W¹[0, 1]" in masked and "0.05 = 0.000497713\n" in masked
    assert "largest relative error ~~~~~~~: every" in masked and "0.00361  ~~~~~~~\n" in masked


def test_docs_page_shows_what_the_command_prints():
    """docs/explain.md pastes real output: every text block must still be found in it, digit for
    digit, except the finite-difference relative errors, which must stay below the bound."""
    import contextlib
    import io
    import pathlib

    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "explain.md"
    if not doc.exists():
        pytest.skip("docs/explain.md not in this checkout")
    outputs = []
    for argv in (["--example", "mazur", "--lr", "0.5"], ["--example", "mazur", "--lr", "0.5", "--notation", "matrix"],
                 ["--example", "test-score"], ["--example", "mazur", "--steps", "3"], ["--example", "conv"],
                 ["--example", "attention"]):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            assert main(["explain", *argv]) == 0
        outputs.append(buf.getvalue())
    net = cr.mlp([64, 32, 16, 10], activation="sigmoid", seed=0, dtype=np.float64)
    x = np.random.default_rng(0).normal(size=(4, 64))
    outputs.append(str(cr.explain(net, cr.CrossEntropy(), x, [1, 3, 5, 7], lr=0.1)))
    everything, printed_errors = split_noise("\n".join(outputs))
    assert len(printed_errors) >= 12 + 1 + 3
    assert max(printed_errors) < NOISE_BOUND
    page, pasted_errors = split_noise(doc.read_text(encoding="utf-8"))
    assert len(pasted_errors) >= 12 + 1 + 3 and max(pasted_errors) < NOISE_BOUND
    blocks = [b.split("```", 1)[0] for b in page.split("```text\n")[1:]]
    assert len(blocks) >= 12
    for block in blocks:
        for chunk in block.replace("...\n", "\n\n").split("\n\n"):
            assert chunk.strip() in everything, chunk[:200]
