"""Each remedy's snippet as Keras code, for a check of a Keras model file (kerassweep26: every Keras
item's remedies came with PyTorch code, ``nn.init.kaiming_normal_``, ``nn.BatchNorm1d``,
``nn.Sequential(nn.Linear(1536, 1), nn.Identity())``).

A Keras file holds the model's config, not the code that built it, so a snippet is the change to
make where the model is built (a layer's ``kernel_initializer``, ``activation``, a
``layers.BatchNormalization()`` after it, the optimizer's ``global_clipnorm``), naming the file's
own layers where the remedy's change names them. Built from what the remedy carries (its id,
change, params and PyTorch snippet), so every door that checks a Keras file renders the same code:
:func:`keras_snippet`. The remedy id, its change and its params stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from gradhealth.core.document import Remedy

_BUILT = "# where the model is built"

#: The Keras activation name of each torch activation module a snippet names.
_KERAS_ACTIVATION = {"Identity": None, "Sigmoid": "sigmoid", "Tanh": "tanh", "ReLU": "relu", "Softmax": "softmax",
                     "LogSoftmax": "log_softmax", "Hardtanh": "hard_tanh", "Softsign": "softsign",
                     "Hardsigmoid": "hard_sigmoid", "Softplus": "softplus"}


def _act(torch_name: str) -> str:
    """``activation=...`` for the torch module ``torch_name`` (``None``: a linear layer)."""
    name = _KERAS_ACTIVATION.get(torch_name, torch_name.lower())
    return "activation=None" if name is None else f'activation="{name}"'


def _was(text: str) -> str:
    """A PyTorch ``was`` text (``nn.Sigmoid() on a regression output``) in Keras' words."""
    return re.sub(r"nn\.(\w+)\((?:dim=-1)?\)", lambda m: _act(m.group(1)), text)


def _for(where: str | None) -> str:
    return f" for {where}" if where else ""


def _rate(params: dict[str, Any], factor: Any) -> str:
    rate = params.get("suggested_learning_rate")
    return f"{float(rate):.3g}" if isinstance(rate, int | float) else f"learning_rate * {factor}"


def keras_snippet(remedy: Remedy, where: str | None = None) -> str | None:
    """``remedy``'s snippet as Keras code; ``where``: the file's layers its change names, in its own
    words (``dense_3, dense_4 and 6 more``). None where the snippet is not framework code (an RLHF
    trainer's config), kept as it is."""
    rid, p, change = remedy.id, remedy.params, remedy.change
    at = _for(where)
    if rid in ("he_init", "xavier_init", "lecun_init") and p.get("recurrent"):
        # a recurrent cell's input kernel: the cell's own initialiser argument, not a Dense's (kerassweep29)
        init = {"he_init": "he_normal", "xavier_init": "glorot_normal", "lecun_init": "lecun_normal"}[rid]
        cell = str(p.get("cell") or "GRU")
        return (f"{_BUILT}{at}: the cell's input kernel drawn with {init}, its recurrent kernel orthogonal\n"
                f'layers.{cell}(units, kernel_initializer="{init}", recurrent_initializer="orthogonal")')
    if rid in ("he_init", "xavier_init", "lecun_init") and p.get("collapsed_layers"):
        # the layers whose stored kernels collapsed, re-drawn in the loaded model: not where it is built
        keras_init = {"kaiming_normal": "HeNormal", "xavier_normal": "GlorotNormal", "lecun_normal": "LecunNormal"}
        schemes = p.get("schemes") or {}
        lines = ["# re-initialise only the layers whose kernels collapsed; every other trained weight is kept"]
        for name in p["collapsed_layers"]:
            draw = keras_init.get(str(schemes.get(name)), "HeNormal")
            lines += [f'layer = model.get_layer("{name}")',
                      f"layer.kernel.assign(keras.initializers.{draw}()(layer.kernel.shape))",
                      "if layer.bias is not None:",
                      "    layer.bias.assign(keras.ops.zeros_like(layer.bias))"]
        lines.append("# then train on with a lower weight decay (or L1/activity regularizer) and learning rate")
        return "\n".join(lines)
    if rid in ("he_init", "xavier_init", "lecun_init"):
        init = {"he_init": "he_normal", "xavier_init": "glorot_normal", "lecun_init": "lecun_normal"}[rid]
        return (f"{_BUILT}{at}: {init} weights, zero biases\n"
                f'layers.Dense(units, activation=..., kernel_initializer="{init}", bias_initializer="zeros")\n'
                f'layers.Conv2D(filters, kernel_size, kernel_initializer="{init}", bias_initializer="zeros")'
                "  # Conv1D, Conv2DTranspose alike")
    if rid == "zero_bias":
        return (f"{_BUILT}{at}: biases start at 0 (the kernels' initialiser kept)\n"
                'layers.Dense(units, activation=..., bias_initializer="zeros")  # Conv2D alike\n'
                'layers.BatchNormalization(beta_initializer="zeros")  # a norm\'s shift')
    if rid == "normalise_inputs":
        targets = "train_y" in remedy.snippet
        lines = ["# from the training set's own statistics, the same for every split (images: x / 255 first)"]
        if targets:
            lines += ["y_mean, y_std = train_y.mean(axis=0), train_y.std(axis=0) + 1e-8",
                      "y = (y - y_mean) / y_std  # model.predict(x) * y_std + y_mean is back in the targets' units"]
        lines += ["norm = layers.Normalization(axis=-1)",
                  "norm.adapt(train_x)  # the training set's mean and variance",
                  "x = norm(inputs)  # the model's first layer, after keras.Input"]
        return "\n".join(lines)
    if rid == "normalise_targets":
        return ("# fit on standardised targets, from the training set's own statistics; invert at prediction\n"
                f"y_mean, y_std = {p.get('mean')}, {p.get('std')}  # train_y.mean(), train_y.std()\n"
                "model.fit(x, (y - y_mean) / y_std, ...)\n"
                "prediction = model.predict(x) * y_std + y_mean  # back in the targets' units")
    if rid == "domain_guard":
        return ("# the same guard with keras.ops: keras.ops.maximum(x, eps) for x.clamp(min=eps), "
                "keras.ops.clip(x, lo, hi) for x.clamp(lo, hi)\n" + remedy.snippet.replace("torch.", "keras.ops."))
    if rid == "bounded_cell_activation":
        return (f"{_BUILT}{at}: the recurrent layer's own activation back to its default\n"
                f'layers.LSTM(units, activation="tanh")  # not activation="{p.get("activation", "relu")}"; '
                "GRU, SimpleRNN alike")
    if rid == "stable_decay" and p.get("form") == "selective":
        return ("# in the layer's build: Mamba's A = -exp(A_log) < 0, so the decay exp(delta * A) is in (0, 1)\n"
                "a_log0 = np.log(np.tile(np.arange(1, d_state + 1, dtype=\"float32\"), (d_inner, 1)))  # S4D-real\n"
                "self.A_log = self.add_weight(shape=(d_inner, d_state), initializer=keras.initializers.Constant(a_log0))\n"
                f"# delta = softplus(dt_proj(x)) starting in [{p.get('dt_min')}, {p.get('dt_max')}] through dt_proj's bias\n"
                "A = -keras.ops.exp(self.A_log)  # in call\n"
                "dA = keras.ops.exp(keras.ops.expand_dims(delta, -1) * A)\n"
                "h = dA[:, t] * h + dBx[:, t]")
    if rid == "stable_decay":
        return (f"# in the layer's build: |a| drawn in [{p.get('r_min')}, {p.get('r_max')}], kept in (0, 1) by "
                "its parameterisation\n"
                f"nu0 = np.log(-np.log(np.random.uniform({p.get('r_min')}, {p.get('r_max')}, d)))\n"
                "self.nu = self.add_weight(shape=(d,), initializer=keras.initializers.Constant(nu0))\n"
                "a = keras.ops.exp(-keras.ops.exp(self.nu))  # in call\n"
                "h = a * h + u_t")
    if rid == "orthogonal_init":
        return (f"{_BUILT}{at}: orthogonal recurrent weights (Keras' default for its recurrent layers)\n"
                'layers.SimpleRNN(units, recurrent_initializer="orthogonal")  # LSTM, GRU alike')
    if rid == "relu_family_activation":
        leaky = re.search(r"\buse leaky_relu\b", change) is not None
        swapped = _swapped(remedy.snippet)
        instead = f"instead of {swapped}" if swapped else "instead of its saturating one"
        if leaky:
            return (f"{_BUILT}{at}: a leaky ReLU {instead}, He normal weights, zero biases\n"
                    'layers.Dense(units, kernel_initializer="he_normal", bias_initializer="zeros")  # no activation\n'
                    "layers.LeakyReLU()  # right after it; a Conv2D alike")
        return (f"{_BUILT}{at}: ReLU {instead}, He normal weights, zero biases\n"
                'layers.Dense(units, activation="relu", kernel_initializer="he_normal", bias_initializer="zeros")\n'
                '# a convolution alike: layers.Conv2D(filters, kernel_size, activation="relu", '
                'kernel_initializer="he_normal")\n'
                "# the output layer's own activation (a sigmoid for 0/1 labels) is kept")
    if rid == "residual_connections":
        return (f"# around each block{at}: x + f(x)\n"
                "y = block(x)  # the layers the skip goes around\n"
                "x = layers.Add()([x, y])\n"
                "# where f(x) changes the width: layers.Add()([layers.Dense(width)(x), y]) "
                "(a 1x1 layers.Conv2D(filters, 1) for feature maps)")
    if rid == "scaled_residual":
        return (f"# each residual branch{at} scaled by 1/sqrt(num_blocks): keeps Var(h) bounded with depth\n"
                "x = layers.Add()([x, layers.Rescaling(1 / math.sqrt(num_blocks))(block(x))])")
    if rid == "layer_norm" and p.get("recurrent"):
        # a recurrent cell's own saturation: what the cell reads normalised, its tanh and sigmoid
        # gates kept (a Dense/relu template is another layer type's, kerassweep29)
        cell = str(p.get("cell") or "GRU")
        return (f"{_BUILT}{at}: normalise what the cell reads (or use a layer-normalised cell)\n"
                "x = layers.LayerNormalization()(x)  # over the features of each step\n"
                f"x = layers.{cell}(units, return_sequences=True)(x)  # its own tanh and sigmoid gates kept")
    if rid in ("batch_norm", "layer_norm"):
        norm = "BatchNormalization" if rid == "batch_norm" else "LayerNormalization"
        return (f"{_BUILT}{at}: the norm between the layer and its activation\n"
                "x = layers.Dense(units)(x)  # the layer, with no activation of its own\n"
                f"x = layers.{norm}()(x)\n"
                'x = layers.Activation("relu")(x)  # the activation the layer had\n'
                f"# after a Conv2D alike: layers.Conv2D(filters, kernel_size)(x), then layers.{norm}()"
                + (" (over the channels, axis=-1)" if rid == "layer_norm" else ""))
    if rid == "pre_layer_norm":
        return (f"# each Transformer block{at}, Pre-LN: the norm before each sublayer, the residual around it\n"
                "h = layers.LayerNormalization()(x)\n"
                "x = layers.Add()([x, layers.MultiHeadAttention(num_heads, key_dim)(h, h)])\n"
                "h = layers.LayerNormalization()(x)\n"
                "x = layers.Add()([x, feed_forward(h)])\n"
                "# and a final layers.LayerNormalization() after the stack")
    if rid == "gated_recurrent_cell":
        return _lstm(remedy, at)
    if rid == "gradient_clipping":
        return (f"optimizer = keras.optimizers.Adam(learning_rate=..., global_clipnorm={p.get('max_norm'):g})"
                "  # your optimizer, kept\n"
                "# global_clipnorm clips the total norm (torch's clip_grad_norm_); clipnorm= clips each weight's\n"
                "model.compile(optimizer=optimizer, ...)")
    if rid in ("lower_learning_rate", "raise_learning_rate") and p.get("target") in _KERAS_GAN_OPTIMIZERS:
        return _gan_rate(p)
    if rid in ("lower_learning_rate", "raise_learning_rate"):
        factor = p.get("factor")
        rate = _rate(p, factor)
        steps = p.get("warmup_steps")
        if steps:
            return (f"rate = {rate}  # the rate x{factor}\n"
                    "schedule = keras.optimizers.schedules.PolynomialDecay(  # linear warm-up, then the rate\n"
                    f"    rate / {steps}, decay_steps={steps}, end_learning_rate=rate, power=1.0)\n"
                    "model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), ...)  # your optimizer")
        return (f"model.compile(optimizer=keras.optimizers.Adam(learning_rate={rate}), ...)"
                f"  # your optimizer, kept, at {factor}x its rate")
    if rid == "positive_learning_rate":
        return (f"model.compile(optimizer=keras.optimizers.{p.get('optimizer', 'Adam')}"
                f"(learning_rate={p.get('rate')}), ...)")
    if rid == "check_updates":
        return ('print("frozen:", [w.name for w in model.non_trainable_weights])\n'
                'print("trained:", len(model.trainable_weights), "weights; lr:", '
                "float(model.optimizer.learning_rate))  # each epoch: is it 0?\n"
                "# a layer left trainable=False is never updated; a custom loop: "
                "optimizer.apply_gradients(zip(grads, model.trainable_weights)) every batch")
    if rid == "check_loss_graph":
        return ("with tf.GradientTape() as tape:  # the TensorFlow backend\n"
                "    loss = loss_fn(y, model(x, training=True))  # your loss, on one batch\n"
                "grads = tape.gradient(loss, model.trainable_weights)\n"
                "print({w.name: None if g is None else float(tf.reduce_max(tf.abs(g)))\n"
                "       for w, g in zip(model.trainable_weights, grads)})  # None or 0.0 everywhere: no gradient\n"
                "# and two different batches must give two different losses")
    if rid == "check_data":
        return ("for i, (x, y) in enumerate(dataset):\n"
                "    if not (np.isfinite(x).all() and np.isfinite(y).all()):\n"
                '        raise ValueError("batch %d: NaN/Inf in its inputs or targets" % i)\n'
                f"# the data finite? rerun up to step {p.get('step')} with the operation that makes it named:\n"
                "tf.debugging.enable_check_numerics()  # the TensorFlow backend")
    if rid == "logits_loss":
        return (f"model.compile(loss=keras.losses.{p.get('keras_loss', 'CategoricalCrossentropy')}"
                "(from_logits=True), ...)  # the last layer with no activation: raw logits in")
    if rid == "output_activation":
        act = _act(str(p.get("activation", "Identity")))
        line = (f"layers.Dense({p.get('n_out', 'units')}, {act})"
                + (f"  # {where}" if where else "") + f": not {_was(str(p.get('was', '')))}")
        if "BCEWithLogitsLoss" in remedy.snippet:
            line += "\nmodel.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True), ...)  # on this logit"
        return line
    if rid == "weight_decay":
        return (f"optimizer = keras.optimizers.AdamW(learning_rate=..., weight_decay={p.get('weight_decay'):g})\n"
                "# or weight_decay= on your own optimizer (Keras 3, tf.keras 2.11+)")
    if rid == "balance_classes":
        return ("counts = np.bincount(train_labels, minlength=n_classes)\n"
                "weight = counts.sum() / (n_classes * np.maximum(counts, 1))  # rarer classes weigh more\n"
                "model.fit(x, y, class_weight=dict(enumerate(weight.tolist())), ...)")
    if rid == "early_stopping":
        monitor = p.get("monitor") or "val_loss"
        mode = "max" if re.search(r"\b\w+ > best", remedy.snippet) else "min"
        return (f'stop = keras.callbacks.EarlyStopping(monitor="{monitor}", mode="{mode}", '
                f"patience={p.get('patience')}, restore_best_weights=True)\n"
                "model.fit(..., validation_data=(val_x, val_y), callbacks=[stop])")
    return None  # raise_kl_coefficient: a trainer's config, in no framework's code


#: A Keras GAN's two optimizers as keras.io's GAN examples name them (``gan.compile(d_optimizer=...,
#: g_optimizer=...)``), for each network a GAN remedy acts on (param ``target``)
_KERAS_GAN_OPTIMIZERS = {"discriminator": ("d_optimizer",), "generator": ("g_optimizer",),
                         "both": ("g_optimizer", "d_optimizer")}


def _gan_rate(p: dict[str, Any]) -> str:
    """A GAN's learning-rate change on the optimizer of the network it acts on (``p["target"]``), the
    other's kept: a cut on "your optimizer" could land on the generator that is already losing."""
    target = str(p["target"])
    optimizers = _KERAS_GAN_OPTIMIZERS[target]
    factor = p.get("factor")
    rate = p.get("suggested_learning_rate")
    if len(optimizers) == 1:
        other = "g_optimizer" if target == "discriminator" else "d_optimizer"
        new = f"{float(rate):.3g}" if isinstance(rate, int | float) else f"float({optimizers[0]}.learning_rate) * {factor}"
        lines = [f"{optimizers[0]}.learning_rate = {new}  # the {target}'s optimizer only: {other} keeps its rate"]
    else:
        lines = [f"{opt}.learning_rate = float({opt}.learning_rate) * {factor}  # both networks' optimizers"
                 for opt in optimizers]
    return "\n".join(lines + ["# the optimizers passed to gan.compile(d_optimizer=..., g_optimizer=...)"])


def _swapped(snippet: str) -> str | None:
    """The activations a PyTorch ``relu_family_activation`` snippet swaps, in Keras' words."""
    m = re.search(r"isinstance\(child, \(([^)]*)\)", snippet)
    if m is None:
        return None
    names = [_KERAS_ACTIVATION.get(n.strip().removeprefix("nn."), n.strip().removeprefix("nn.").lower())
             for n in m.group(1).split(",") if n.strip()]
    return " or ".join(f'activation="{n}"' for n in names if n) or None


def _lstm(remedy: Remedy, at: str) -> str:
    """gated_recurrent_cell in Keras: an LSTM, its forget-gate bias (Keras' unit_forget_bias is 1.0)
    or chrono initialisation; the bias is [input, forget, cell, output] gates, units each."""
    bias = remedy.params.get("forget_bias")
    # hard-sigmoid gates (Keras <= 2.3's default) are flat where an opened forget gate's bias puts
    # them: the remedy's verified cell has sigmoid gates, which the snippet must set (kerassweep28)
    gates = ('recurrent_activation="sigmoid", ' if remedy.params.get("recurrent_activation") == "sigmoid" else "")
    if bias == "chrono":
        steps = re.search(r"T_max = (\d+)", remedy.change)
        return (f"{_BUILT}{at}: an LSTM with chrono gate initialisation\n"
                f"T_max = {steps.group(1) if steps else 'sequence_length'}\n"
                "def chrono(shape, dtype=None):  # the bias: [input, forget, cell, output] gates, units each\n"
                "    units = shape[0] // 4\n"
                "    b_f = np.log(np.random.uniform(1, T_max - 1, units))\n"
                '    return np.concatenate([-b_f, b_f, np.zeros(2 * units)]).astype("float32")\n'
                f"layers.LSTM(units, {gates}unit_forget_bias=False, bias_initializer=chrono)")
    if isinstance(bias, int | float) and float(bias) == 1.0:
        return (f"{_BUILT}{at}: an LSTM with forget-gate bias 1.0\n"
                f"layers.LSTM(units, {gates}unit_forget_bias=True)  # Keras' default: the forget gate's bias at 1.0")
    return (f"{_BUILT}{at}: an LSTM with forget-gate bias {bias}\n"
            "def forget_bias(shape, dtype=None):  # the bias: [input, forget, cell, output] gates, units each\n"
            "    units = shape[0] // 4\n"
            f'    return np.concatenate([np.zeros(units), np.full(units, {bias}), np.zeros(2 * units)]).astype("float32")\n'
            f"layers.LSTM(units, {gates}unit_forget_bias=False, bias_initializer=forget_bias)")


def named_layers(change: str, names: Iterable[str]) -> str | None:
    """The file's layers ``change`` names, in its own words (``dense_3, dense_4, dense_5, dense_6 and
    6 more``, ``lstm and dense_2``): the first run of layer names in it; None where it names none."""
    known = sorted({n for n in names if n}, key=len, reverse=True)
    if not known:
        return None
    name = "(?:" + "|".join(re.escape(n) for n in known) + r")(?![\w#.\[])"
    found = re.search(rf"(?<![\w#.]){name}(?:, {name})*(?:,? and (?:{name}|\d+ more))?", change)
    return found.group(0) if found else None


def in_keras(doc: Any) -> Any:
    """``doc`` (a Keras file's check) with every remedy's snippet in Keras code, its
    ``snippet_framework`` ``keras``, naming the file's layers that the remedy's change names."""
    names = [layer.name for layer in getattr(doc, "layers", None) or []]
    for finding in doc.findings:
        for remedy in finding.remedies:
            code = keras_snippet(remedy, named_layers(remedy.change, names))
            if code is not None:
                remedy.snippet, remedy.snippet_framework = code, "keras"
    return doc
