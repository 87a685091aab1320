"""newuser8 #10/#11 through the API's 422 and the CLI's message: the enum "did you mean" and the
repeated-lstm cause, each at its JSON pointer."""

from __future__ import annotations

import pytest

from gradhealth.cli import main

SPEC = {"input": {"shape": [8]}, "batch_size": 4, "seeds": 1, "loss": {"type": "crossentropy"},
        "layers": [{"type": "linear", "out_features": 3, "activation": "sigmod"}]}
LSTM = {"input": {"shape": [40, 8]}, "batch_size": 4, "seeds": 1, "loss": {"type": "cross_entropy"},
        "layers": [{"type": "lstm", "hidden_size": 16, "repeat": 4}, {"type": "linear", "out_features": 3}]}


def test_the_api_422_says_did_you_mean_at_each_pointer(idle_api):
    r = idle_api.post("/v1/checks/architecture", json=SPEC)
    assert r.status_code == 422
    errors = {e["pointer"]: e["detail"] for e in r.json()["errors"]}
    assert errors["/layers/0/activation"].endswith("did you mean 'sigmoid' or 'hard_sigmoid'?")
    assert errors["/loss/type"].endswith("did you mean 'cross_entropy'?")


def test_the_api_422_of_a_repeated_lstm_names_output(idle_api):
    r = idle_api.post("/v1/checks/architecture", json=LSTM)
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["pointer"] == "/layers/0" and "`output: sequence`" in error["detail"]


@pytest.mark.parametrize("text, said", [
    ("input: {shape: [8]}\nloss: {type: crossentropy}\nlayers:\n  - {type: linear, out_features: 3, "
     "activation: sigmod}\n", ["/layers/0/activation", "did you mean 'sigmoid' or 'hard_sigmoid'?", "did you mean 'cross_entropy'?"]),
    ("input: {shape: [40, 8]}\nlayers:\n  - {type: lstm, hidden_size: 16, repeat: 4}\n  - {type: linear, "
     "out_features: 3}\n", ["/layers/0", "repeat 2 of 4", "output: sequence"]),
])
def test_the_cli_says_it_too_with_exit_2(tmp_path, capsys, text, said):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for words in said:
        assert words in err, err
