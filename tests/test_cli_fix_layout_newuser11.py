"""newuser11 #11: `gradhealth fix` writes a replaced layer as the layer was written: a one-line flow
mapping stays one line, with its keys in their order (`type` first), and a block one keeps its
comments."""

from __future__ import annotations

from pathlib import Path

from gradhealth.cli import main

HEAD = """# A plain tanh RNN over 100 steps: gradient vanishes through time.
name: tanh RNN over 100 steps
input: {shape: [100, 32]}
batch_size: 32
layers:
"""


def test_a_flow_layer_stays_one_line_in_its_key_order(tmp_path: Path) -> None:
    spec = tmp_path / "rnn.yaml"
    spec.write_text(HEAD + "  - {type: rnn, hidden_size: 128, nonlinearity: tanh}\n"
                    "  - {type: linear, out_features: 10}  # the readout\n")
    out = tmp_path / "fixed.yaml"
    assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell", "-o", str(out)]) == 0
    assert out.read_text() == HEAD + ("  - {type: lstm, hidden_size: 128, forget_bias: chrono}\n"
                                      "  - {type: linear, out_features: 10}  # the readout\n")
    out2 = tmp_path / "fixed2.yaml"
    assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell", "--variant", "2", "-o", str(out2)]) == 0
    assert "  - {type: lstm, hidden_size: 128, forget_bias: 1.0}\n" in out2.read_text()


def test_a_block_layer_stays_a_block_with_its_comments(tmp_path: Path) -> None:
    spec = tmp_path / "rnn.yaml"
    spec.write_text(HEAD + "  - type: rnn  # the recurrent part\n"
                    "    hidden_size: 128  # as wide as the paper's\n"
                    "    nonlinearity: tanh\n"
                    "  - {type: linear, out_features: 10}\n")
    out = tmp_path / "fixed.yaml"
    assert main(["fix", str(spec), "--remedy", "gated_recurrent_cell", "-o", str(out)]) == 0
    # (a comment after a value that grew keeps its column where it can: `lstm` is one longer than `rnn`)
    assert out.read_text().replace("lstm # the", "lstm  # the") == HEAD + ("  - type: lstm  # the recurrent part\n"
                                      "    hidden_size: 128  # as wide as the paper's\n"
                                      "    forget_bias: chrono\n"
                                      "  - {type: linear, out_features: 10}\n")
