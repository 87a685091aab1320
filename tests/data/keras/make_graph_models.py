"""Writes the Keras files the graph-door tests read (run by hand; the tests never import Keras).

    KERAS_BACKEND=torch python tests/data/keras/make_graph_models.py [NAME...]  # keras 3.15.1, torch 2.13

Each model is saved as ``<name>.keras`` (Keras 3 archive: config.json + model.weights.h5) and
``<name>.h5`` (the legacy HDF5 format), next to ``<name>.expected.json``: a fixed input and what
Keras itself computes from it, in inference and in training mode, so the tests compare our
PyTorch build of the graph against Keras' own forward pass, an independent computation.
"""

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402

HERE = Path(__file__).parent


def mobile_dense_block() -> keras.Model:
    """What keras.applications' MobileNets, EfficientNets and DenseNets are made of, small:
    asymmetric ZeroPadding2D before a strided conv, depthwise conv (multiplier 2), squeeze and
    excitation (Multiply), a separable conv beside a projection shortcut (Add of two branches),
    Concatenate, average pooling with 'same' padding (over the real values only), UpSampling2D, Cropping2D,
    LayerNormalization and a softmax Dense after Flatten."""
    keras.utils.set_random_seed(1)
    x_in = keras.Input((16, 16, 3), name="image")
    x = layers.Rescaling(1 / 2.0, offset=-0.5, name="rescale")(x_in)
    x = layers.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pad")(x)
    x = layers.Conv2D(8, 3, strides=2, padding="valid", kernel_initializer="he_normal", name="stem_conv")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(6.0, name="stem_relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = layers.BatchNormalization(name="dw_bn")(x)
    x = layers.Activation("swish", name="dw_act")(x)
    se = layers.GlobalAveragePooling2D(keepdims=True, name="se_pool")(x)
    se = layers.Conv2D(4, 1, activation="relu", name="se_reduce")(se)
    se = layers.Conv2D(16, 1, activation="sigmoid", name="se_expand")(se)
    x = layers.Multiply(name="se_excite")([x, se])
    a = layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    b = layers.Conv2D(8, 1, name="proj")(x)
    x = layers.Add(name="add")([a, b])
    c = layers.Conv2D(4, 3, padding="same", activation="tanh", name="side")(x)
    x = layers.Concatenate(name="concat")([x, c])
    x = layers.AveragePooling2D(3, strides=1, padding="same", name="avg")(x)
    x = layers.UpSampling2D(2, name="up")(x)
    x = layers.Cropping2D(((1, 1), (1, 1)), name="crop")(x)
    x = layers.LayerNormalization(name="ln")(x)
    x = layers.Flatten(name="flat")(x)
    out = layers.Dense(10, activation="softmax", name="head")(x)
    model = keras.Model(x_in, out, name="mobile_dense_block")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    return model


def sequence_mixer() -> keras.Model:
    """A 1-d model: causal dilated Conv1D, max pooling with 'same' padding, Permute, Reshape,
    Maximum and Subtract merges, PReLU and a sigmoid output for binary cross-entropy."""
    keras.utils.set_random_seed(2)
    x_in = keras.Input((12, 4), name="signal")
    x = layers.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="elu", name="causal")(x_in)
    y = layers.Conv1D(6, 1, kernel_initializer="lecun_normal", name="mix")(x_in)
    m = layers.Maximum(name="max")([x, y])
    d = layers.Subtract(name="sub")([x, y])
    x = layers.Average(name="avg")([m, d])
    x = layers.MaxPooling1D(3, strides=2, padding="same", name="pool")(x)
    x = layers.Permute((2, 1), name="perm")(x)
    x = layers.Reshape((-1,), name="flat")(x)
    x = layers.Dense(8, name="hidden")(x)
    x = layers.PReLU(name="prelu")(x)
    out = layers.Dense(1, activation="sigmoid", name="out")(x)
    model = keras.Model(x_in, out, name="sequence_mixer")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def nested_layer_scale() -> keras.Model:
    """ConvNeXt's shape, small: a nested Sequential stem (Conv2D + LayerNormalization), blocks of a
    grouped 7x7-style conv, LayerNormalization, two Dense on the channels axis and a LayerScale of
    1e-6 added to the stream, and a Normalization of the raw input with constants in its config."""
    from keras.src.applications.convnext import LayerScale

    keras.utils.set_random_seed(3)
    x_in = keras.Input((8, 8, 3), name="pixels")
    x = layers.Normalization(mean=[120.0, 110.0, 100.0], variance=[3000.0, 3100.0, 3200.0],
                             name="prestem")(x_in)
    stem = keras.Sequential([layers.Conv2D(8, 2, strides=2, name="stem_conv"),
                             layers.LayerNormalization(epsilon=1e-6, name="stem_ln")], name="stem")
    x = stem(x)
    for k in range(3):
        y = layers.Conv2D(8, 3, padding="same", groups=8, name=f"b{k}_dw")(x)
        y = layers.LayerNormalization(epsilon=1e-6, name=f"b{k}_ln")(y)
        y = layers.Dense(32, activation="gelu", name=f"b{k}_pw1")(y)
        y = layers.Dense(8, name=f"b{k}_pw2")(y)
        y = LayerScale(1e-6, 8, name=f"b{k}_scale")(y)
        x = layers.Add(name=f"b{k}_add")([x, y])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(4, activation="softmax", name="head")(x)
    model = keras.Model(x_in, out, name="nested_layer_scale")
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="sparse_categorical_crossentropy")
    return model


def decoder() -> keras.Model:
    """A GAN generator's / U-Net decoder's layers: Conv2DTranspose with 'same' and 'valid'
    padding and strides (a kernel smaller than its stride too), a Conv1DTranspose, concatenated
    skips and a tanh output (MSE). 'same' here always crops the same on both sides: where the
    crop is odd, TensorFlow puts the extra row after and Keras' torch backend before, so only the
    symmetric case is one answer to compare against."""
    keras.utils.set_random_seed(4)
    x_in = keras.Input((2, 2, 6), name="code")
    up = layers.Conv2DTranspose(8, 4, strides=2, padding="same", activation="relu", name="up1")(x_in)
    skip = layers.UpSampling2D(2, name="skip")(x_in)
    x = layers.Concatenate(name="join")([up, skip])
    x = layers.Conv2DTranspose(4, 4, strides=2, padding="valid", name="up2")(x)
    x = layers.Conv2DTranspose(5, 1, strides=2, padding="valid", name="sparse")(x)
    x = layers.Conv2DTranspose(3, 3, strides=1, padding="same", activation="tanh", name="rgb")(x)
    x = layers.Reshape((-1, 3), name="rows")(x)
    x = layers.Conv1DTranspose(2, 4, strides=2, padding="same", name="wave")(x)
    out = layers.Flatten(name="flat")(x)
    model = keras.Model(x_in, out, name="decoder")
    model.compile(optimizer="sgd", loss="mse")
    return model


def recurrent_pools() -> keras.Model:
    """A text classifier's shape (float steps in place of embedded tokens): a Bidirectional LSTM
    over the sequence, pooled both ways, beside Keras 2's GRU (hard_sigmoid gates, reset before
    the recurrent product) over its output, a relu SimpleRNN and a default GRU over the input,
    all concatenated."""
    keras.utils.set_random_seed(5)
    x_in = keras.Input((10, 4), name="sequence")
    seq = layers.Bidirectional(layers.LSTM(6, return_sequences=True, name="lstm"), name="bilstm")(x_in)
    avg = layers.GlobalAveragePooling1D(name="avg")(seq)
    top = layers.GlobalMaxPooling1D(name="top")(seq)
    old = layers.GRU(5, reset_after=False, recurrent_activation="hard_sigmoid", name="gru_v1")(seq)
    relu = layers.SimpleRNN(3, activation="relu", name="relu_rnn")(x_in)
    gru = layers.GRU(4, name="gru")(x_in)
    x = layers.Concatenate(name="cat")([avg, top, old, relu, gru])
    out = layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(x_in, out, name="recurrent_pools")
    model.compile(optimizer="rmsprop", loss="categorical_crossentropy")
    return model


def two_towers() -> keras.Model:
    """Two inputs, as a model of text and tabular features has them: token ids through an
    Embedding and a GRU, numbers through a Dense, joined by Concatenate, then one sigmoid unit."""
    keras.utils.set_random_seed(6)
    tokens = keras.Input((7,), dtype="int32", name="tokens")
    numbers = keras.Input((5,), name="numbers")
    text = layers.Embedding(30, 6, name="emb")(tokens)
    text = layers.GRU(4, name="text_gru")(text)
    tab = layers.Dense(6, activation="relu", name="tab")(numbers)
    x = layers.Concatenate(name="join")([text, tab])
    x = layers.Dense(8, activation="tanh", name="mix")(x)
    out = layers.Dense(1, activation="sigmoid", name="out")(x)
    model = keras.Model([tokens, numbers], out, name="two_towers")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def three_heads() -> keras.Model:
    """Several outputs, as multi-task models and auxiliary classifiers have them: a softmax head
    and a linear head at the end, and a sigmoid auxiliary head on the first hidden layer; the
    compiled loss names one per output."""
    keras.utils.set_random_seed(7)
    x_in = keras.Input((6,), name="features")
    h1 = layers.Dense(16, activation="relu", name="h1")(x_in)
    h2 = layers.Dense(8, activation="relu", name="h2")(h1)
    kind = layers.Dense(3, activation="softmax", name="kind")(h2)
    size = layers.Dense(1, name="size")(h2)
    aux = layers.Dense(1, activation="sigmoid", name="aux")(h1)
    model = keras.Model(x_in, [kind, size, aux], name="three_heads")
    model.compile(optimizer="adam", loss={"kind": "categorical_crossentropy", "size": "mse",
                                          "aux": "binary_crossentropy"})
    return model


def attention_block() -> keras.Model:
    """Keras' timeseries Transformer encoder block: causal self-attention (MultiHeadAttention of
    x and x) added to x and layer-normalised, a position-wise Conv1D feed-forward added again, then
    a cross-attention whose value and key come from another branch (value_dim and output_shape of
    its own), global average pooling and a softmax head."""
    keras.utils.set_random_seed(8)
    x_in = keras.Input((12, 6), name="series")
    a = layers.MultiHeadAttention(num_heads=2, key_dim=4, name="self_attn")(x_in, x_in, use_causal_mask=True)
    x = layers.LayerNormalization(epsilon=1e-6, name="ln1")(layers.Add(name="res1")([x_in, a]))
    f = layers.Conv1D(8, 1, activation="relu", name="ff1")(x)
    f = layers.Conv1D(6, 1, name="ff2")(f)
    x = layers.LayerNormalization(epsilon=1e-6, name="ln2")(layers.Add(name="res2")([x, f]))
    memory = layers.Dense(5, activation="tanh", name="memory")(x_in)
    c = layers.MultiHeadAttention(num_heads=3, key_dim=2, value_dim=3, output_shape=7,
                                  name="cross_attn")(x, memory)
    x = layers.GlobalAveragePooling1D(name="pool")(c)
    out = layers.Dense(3, activation="softmax", name="head")(x)
    model = keras.Model(x_in, out, name="attention_block")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def question_pairs() -> keras.Model:
    """Shared layers, as a model of sentence pairs has them: one Embedding, one LSTM and one Dense
    applied to both questions (each layer called twice, with the same weights), then their
    difference and product concatenated, and one sigmoid unit."""
    keras.utils.set_random_seed(9)
    first = keras.Input((6,), dtype="int32", name="first")
    second = keras.Input((6,), dtype="int32", name="second")
    embed = layers.Embedding(20, 5, name="shared_emb")
    encode = layers.LSTM(4, name="shared_lstm")
    project = layers.Dense(4, activation="tanh", name="shared_proj")
    a = project(encode(embed(first)))
    b = project(encode(embed(second)))
    x = layers.Concatenate(name="join")([layers.Subtract(name="diff")([a, b]),
                                         layers.Multiply(name="prod")([a, b])])
    out = layers.Dense(1, activation="sigmoid", name="same")(x)
    model = keras.Model([first, second], out, name="question_pairs")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def recommender() -> keras.Model:
    """A two-tower recommender: user and item ids embedded, their cosine (Dot, normalize=True),
    the item against each of the user's recent items (Dot of a sequence and a vector), and the
    user's vector, concatenated into one sigmoid unit."""
    keras.utils.set_random_seed(10)
    user = keras.Input((1,), dtype="int32", name="user")
    item = keras.Input((1,), dtype="int32", name="item")
    history = keras.Input((4,), dtype="int32", name="history")
    u = layers.Flatten(name="u")(layers.Embedding(10, 6, name="user_emb")(user))
    i = layers.Flatten(name="i")(layers.Embedding(12, 6, name="item_emb")(item))
    cosine = layers.Dot(axes=1, normalize=True, name="cosine")([u, i])
    recent = layers.Embedding(12, 6, name="history_emb")(history)
    affinity = layers.Dot(axes=(2, 1), name="affinity")([recent, i])
    x = layers.Concatenate(name="join")([cosine, affinity, u])
    out = layers.Dense(1, activation="sigmoid", name="click")(x)
    model = keras.Model([user, item, history], out, name="recommender")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def sequence_tagger() -> keras.Model:
    """A Sequential named-entity tagger as Keras 2 era code writes it: Embedding, a Bidirectional
    LSTM over the sequence, and TimeDistributed Dense layers (with a TimeDistributed Dropout, of
    rate 0 so that Keras' training-mode output has no noise to compare, and a softmax per token)."""
    keras.utils.set_random_seed(11)
    model = keras.Sequential([
        keras.Input((9,), dtype="int32", name="words"),
        layers.Embedding(25, 6, name="emb"),
        layers.Bidirectional(layers.LSTM(5, return_sequences=True, name="lstm"), name="context"),
        layers.TimeDistributed(layers.Dense(8, activation="relu"), name="per_token"),
        layers.TimeDistributed(layers.Dropout(0.0), name="drop"),
        layers.TimeDistributed(layers.Dense(4, activation="softmax"), name="tags"),
    ], name="sequence_tagger")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    return model


def preact_resnet() -> keras.Model:
    """keras.applications' ResNet50V2, small: the stem convolution reaches the first block's
    pre-activation BatchNormalization only through ZeroPadding2D and MaxPooling2D, each block is
    BN-ReLU-conv-BN-ReLU-conv with an unnormalised last convolution added to the stream (a 1x1
    projection, or a strided 1x1 max pooling, as shortcut), and a BN-ReLU ends the stream."""
    keras.utils.set_random_seed(12)
    x_in = keras.Input((16, 16, 3), name="image")
    x = layers.ZeroPadding2D(((3, 3), (3, 3)), name="conv1_pad")(x_in)
    x = layers.Conv2D(8, 7, strides=2, name="conv1_conv")(x)
    x = layers.ZeroPadding2D(((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for k, (filters, stride) in enumerate([(8, 1), (8, 2), (16, 1)], start=1):
        name = f"block{k}"
        preact = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_preact_bn")(x)
        preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
        if filters != x.shape[-1]:
            shortcut = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
        elif stride > 1:
            shortcut = layers.MaxPooling2D(1, strides=stride, name=f"{name}_0_pool")(x)
        else:
            shortcut = x
        y = layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(preact)
        y = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_1_bn")(y)
        y = layers.Activation("relu", name=f"{name}_1_relu")(y)
        y = layers.ZeroPadding2D(((1, 1), (1, 1)), name=f"{name}_2_pad")(y)
        y = layers.Conv2D(filters, 3, strides=stride, use_bias=False, name=f"{name}_2_conv")(y)
        y = layers.BatchNormalization(epsilon=1.001e-5, name=f"{name}_2_bn")(y)
        y = layers.Activation("relu", name=f"{name}_2_relu")(y)
        y = layers.Conv2D(filters, 1, name=f"{name}_3_conv")(y)
        x = layers.Add(name=f"{name}_out")([shortcut, y])
    x = layers.BatchNormalization(epsilon=1.001e-5, name="post_bn")(x)
    x = layers.Activation("relu", name="post_relu")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(x_in, out, name="preact_resnet")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    return model


def inception_resnet() -> keras.Model:
    """keras.applications' InceptionResNetV2, small: blocks whose branches (conv-BN-relu) are
    concatenated, projected by a 1x1 convolution with a bias and no norm, and added to the
    block's input scaled by keras.applications' own CustomScaleLayer(scale=0.17)."""
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    keras.utils.set_random_seed(13)

    def conv_bn(x: object, filters: int, size: int, name: str) -> object:
        x = layers.Conv2D(filters, size, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = layers.BatchNormalization(scale=False, name=f"{name}_bn")(x)
        return layers.Activation("relu", name=f"{name}_ac")(x)

    x_in = keras.Input((12, 12, 3), name="image")
    x = conv_bn(x_in, 16, 3, "stem")
    for k in range(1, 4):
        a = conv_bn(x, 8, 1, f"block{k}_a")
        b = conv_bn(conv_bn(x, 8, 1, f"block{k}_b1"), 8, 3, f"block{k}_b2")
        mixed = layers.Concatenate(name=f"block{k}_mixed")([a, b])
        up = layers.Conv2D(16, 1, use_bias=True, name=f"block{k}_conv")(mixed)
        x = CustomScaleLayer(scale=0.17, name=f"block{k}_scale")([x, up])
        x = layers.Activation("relu", name=f"block{k}_ac")(x)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    out = layers.Dense(10, activation="softmax", name="predictions")(x)
    model = keras.Model(x_in, out, name="inception_resnet")
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    return model


def siamese() -> keras.Model:
    """A Siamese network as Keras' image-similarity examples write it: one nested Sequential
    encoder (Conv2D, BatchNormalization, ReLU, pooling, Dense) called on two images, the
    absolute difference of the embeddings (Subtract, then an Activation-free Dense reads it
    squared through Multiply) and a sigmoid head."""
    keras.utils.set_random_seed(14)
    encoder = keras.Sequential([
        keras.Input((10, 10, 3)),
        layers.Conv2D(6, 3, padding="same", use_bias=False, name="enc_conv"),
        layers.BatchNormalization(name="enc_bn"),
        layers.ReLU(name="enc_relu"),
        layers.GlobalAveragePooling2D(name="enc_pool"),
        layers.Dense(8, activation="tanh", name="enc_dense"),
    ], name="encoder")
    left, right = keras.Input((10, 10, 3), name="left"), keras.Input((10, 10, 3), name="right")
    a, b = encoder(left), encoder(right)
    diff = layers.Subtract(name="diff")([a, b])
    square = layers.Multiply(name="square")([diff, diff])
    out = layers.Dense(1, activation="sigmoid", name="same")(square)
    model = keras.Model([left, right], out, name="siamese")
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def _outputs(value: object) -> list:
    """Each output as a list, or the one output's."""
    if isinstance(value, list | tuple):
        return [np.asarray(v.detach().cpu()).tolist() for v in value]
    return np.asarray(value.detach().cpu()).tolist()


def _inputs(model: keras.Model) -> tuple[list[np.ndarray], list[str]]:
    """A fixed batch of 2 for each input: token ids below the Embedding's vocabulary, or floats."""
    rng = np.random.default_rng(0)
    xs, kinds = [], []
    for tensor in model.inputs:
        shape = (2, *tensor.shape[1:])
        if "int" in str(tensor.dtype):
            vocab = min(layer.input_dim for layer in model.layers if isinstance(layer, layers.Embedding))
            # every input of ids here is read by an Embedding of at least this many rows
            xs.append(rng.integers(0, vocab, shape).astype("int32"))
            kinds.append("int")
        else:
            xs.append(rng.standard_normal(shape).astype("float32"))
            kinds.append("float")
    return xs, kinds


def main(names: list[str]) -> None:
    makers = (mobile_dense_block, sequence_mixer, nested_layer_scale, decoder, recurrent_pools, two_towers,
              three_heads, attention_block, question_pairs, recommender, sequence_tagger, preact_resnet,
              inception_resnet, siamese)
    for make in makers:
        if names and make.__name__ not in names:
            continue
        model = make()
        name = model.name
        # PReLU's alpha starts at 0: give it a value so the test sees it loaded
        for layer in model.layers:
            if isinstance(layer, layers.PReLU):
                layer.set_weights([np.full_like(w, 0.25) for w in layer.get_weights()])
        model.save(HERE / f"{name}.keras")
        model.save(HERE / f"{name}.h5")
        source = "keras " + keras.__version__ + " (backend " + keras.backend.backend() + ")"
        if len(model.inputs) > 1 or "int" in str(model.inputs[0].dtype):
            xs, kinds = _inputs(model)
            expected = {
                "source": source, "inputs": [x.tolist() for x in xs], "dtypes": kinds,
                "inference": _outputs(model(xs, training=False)),
                "training": _outputs(model(xs, training=True)),
            }
            (HERE / f"{name}.expected.json").write_text(json.dumps(expected))
            continue
        shape = (2, *model.input_shape[1:])
        x = np.random.default_rng(0).standard_normal(shape).astype("float32")
        if name == "nested_layer_scale":  # raw pixels for its Normalization
            x = x * 50 + 110
        expected = {
            "source": source,
            "input": x.tolist(),
            "inference": _outputs(model(x, training=False)),
            "training": _outputs(model(x, training=True)),
            **({"outputs": len(model.outputs)} if len(model.outputs) > 1 else {}),
        }
        (HERE / f"{name}.expected.json").write_text(json.dumps(expected))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])  # the models named, or every one
