# ruff: noqa: UP008  (the book's super(Class, self) calls are kept as written)
"""Dive into Deep Learning's recurrent and attention models (MXNet chapters 9–11), written as the
book writes them with the imports changed, export with an example and load in a fresh process
that has no model class, matching at batch sizes 1, 2 and 7.

Changes from the book, all mechanical: ``from mxnet import autograd, np, npx`` → ``from modelpack
import autograd, np, npx``; ``from mxnet.gluon import nn, rnn`` → ``from modelpack.gluon import nn,
rnn``; ``d2l.X`` helpers inlined. Device arguments stay as the book writes them (``ctx=X.ctx``).
Outputs must match
bitwise-or-within ``RTOL`` (the loaded graph runs the same numpy operations in the same order;
BLAS may block differently for another batch size).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest

import modelpack
from modelpack import autograd, np, npx
from modelpack.errors import TraceError, UsageError
from modelpack.gluon import nn, rnn
from modelpack.nn import structure

RTOL = 1e-6
BATCHES = (1, 2, 7)


# -- the book's code (chapter 9: rnn-concise, gru, lstm, deep-rnn, bi-rnn) -----------------------


class RNNModel(nn.Block):
    """The RNN model."""

    def __init__(self, rnn_layer, vocab_size, **kwargs):
        super(RNNModel, self).__init__(**kwargs)
        self.rnn = rnn_layer
        self.vocab_size = vocab_size
        self.dense = nn.Dense(vocab_size)

    def forward(self, inputs, state):
        X = npx.one_hot(inputs.T, self.vocab_size)
        Y, state = self.rnn(X, state)
        # The fully-connected layer will first change the shape of `Y` to
        # (`num_steps` * `batch_size`, `num_hiddens`). Its output shape is
        # (`num_steps` * `batch_size`, `vocab_size`).
        output = self.dense(Y.reshape(-1, Y.shape[-1]))
        return output, state

    def begin_state(self, *args, **kwargs):
        return self.rnn.begin_state(*args, **kwargs)


# -- chapter 9: gru (from scratch, as a Block) ----------------------------------------------------


def gru(inputs, state, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = npx.sigmoid(np.dot(X, W_xz) + np.dot(H, W_hz) + b_z)
        R = npx.sigmoid(np.dot(X, W_xr) + np.dot(H, W_hr) + b_r)
        H_tilda = np.tanh(np.dot(X, W_xh) + np.dot(R * H, W_hh) + b_h)
        H = Z * H + (1 - Z) * H_tilda
        Y = np.dot(H, W_hq) + b_q
        outputs.append(Y)
    return np.concatenate(outputs, axis=0), (H,)


class GRUScratch(nn.Block):
    """The chapter's ``get_params`` as parameters of a Block, its ``gru`` as the forward."""

    def __init__(self, vocab_size, num_hiddens):
        super().__init__()
        self.vocab_size = vocab_size
        num_inputs = num_outputs = vocab_size
        shapes = {}
        for gate in "zrh":
            shapes.update({f"W_x{gate}": (num_inputs, num_hiddens), f"W_h{gate}": (num_hiddens, num_hiddens),
                           f"b_{gate}": (num_hiddens,)})
        shapes.update({"W_hq": (num_hiddens, num_outputs), "b_q": (num_outputs,)})
        for name, shape in shapes.items():
            setattr(self, name, nn.Parameter(name, shape=shape, init=nn.init.Normal(0.5)))

    def forward(self, X, state):
        X = npx.one_hot(X.T, self.vocab_size)
        params = [self.W_xz, self.W_hz, self.b_z, self.W_xr, self.W_hr, self.b_r,
                  self.W_xh, self.W_hh, self.b_h, self.W_hq, self.b_q]
        return gru(X, state, [p.data() for p in params])


# -- chapter 10: seq2seq, attention scoring, Bahdanau attention ------------------------------------


class Encoder(nn.Block):
    def __init__(self, **kwargs):
        super(Encoder, self).__init__(**kwargs)


class Decoder(nn.Block):
    def __init__(self, **kwargs):
        super(Decoder, self).__init__(**kwargs)


class EncoderDecoder(nn.Block):
    def __init__(self, encoder, decoder, **kwargs):
        super(EncoderDecoder, self).__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, enc_X, dec_X, *args):
        enc_outputs = self.encoder(enc_X, *args)
        dec_state = self.decoder.init_state(enc_outputs, *args)
        return self.decoder(dec_X, dec_state)


class Seq2SeqEncoder(Encoder):
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0, **kwargs):
        super(Seq2SeqEncoder, self).__init__(**kwargs)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = rnn.GRU(num_hiddens, num_layers, dropout=dropout)

    def forward(self, X, *args):
        X = self.embedding(X)
        X = X.swapaxes(0, 1)
        state = self.rnn.begin_state(batch_size=X.shape[1], ctx=X.ctx)
        output, state = self.rnn(X, state)
        return output, state


class Seq2SeqDecoder(Decoder):
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0, **kwargs):
        super(Seq2SeqDecoder, self).__init__(**kwargs)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = rnn.GRU(num_hiddens, num_layers, dropout=dropout)
        self.dense = nn.Dense(vocab_size, flatten=False)

    def init_state(self, enc_outputs, *args):
        return enc_outputs[1]

    def forward(self, X, state):
        X = self.embedding(X).swapaxes(0, 1)
        context = state[0][-1]
        context = np.broadcast_to(context, (X.shape[0], context.shape[0], context.shape[1]))
        X_and_context = np.concatenate((X, context), 2)
        output, state = self.rnn(X_and_context, state)
        output = self.dense(output).swapaxes(0, 1)
        return output, state


def masked_softmax(X, valid_lens):
    """Perform softmax operation by masking elements on the last axis."""
    if valid_lens is None:
        return npx.softmax(X)
    else:
        shape = X.shape
        if valid_lens.ndim == 1:
            valid_lens = valid_lens.repeat(shape[1])
        else:
            valid_lens = valid_lens.reshape(-1)
        X = npx.sequence_mask(X.reshape(-1, shape[-1]), valid_lens, True, value=-1e6, axis=1)
        return npx.softmax(X).reshape(shape)


class AdditiveAttention(nn.Block):
    def __init__(self, num_hiddens, dropout, **kwargs):
        super(AdditiveAttention, self).__init__(**kwargs)
        self.W_k = nn.Dense(num_hiddens, use_bias=False, flatten=False)
        self.W_q = nn.Dense(num_hiddens, use_bias=False, flatten=False)
        self.w_v = nn.Dense(1, use_bias=False, flatten=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens):
        queries, keys = self.W_q(queries), self.W_k(keys)
        features = np.expand_dims(queries, axis=2) + np.expand_dims(keys, axis=1)
        features = np.tanh(features)
        scores = np.squeeze(self.w_v(features), axis=-1)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return npx.batch_dot(self.dropout(self.attention_weights), values)


class DotProductAttention(nn.Block):
    def __init__(self, dropout, **kwargs):
        super(DotProductAttention, self).__init__(**kwargs)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys, values, valid_lens=None):
        d = queries.shape[-1]
        scores = npx.batch_dot(queries, keys, transpose_b=True) / math.sqrt(d)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return npx.batch_dot(self.dropout(self.attention_weights), values)


class Seq2SeqAttentionDecoder(Decoder):
    def __init__(self, vocab_size, embed_size, num_hiddens, num_layers, dropout=0, **kwargs):
        super(Seq2SeqAttentionDecoder, self).__init__(**kwargs)
        self.attention = AdditiveAttention(num_hiddens, dropout)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = rnn.GRU(num_hiddens, num_layers, dropout=dropout)
        self.dense = nn.Dense(vocab_size, flatten=False)

    def init_state(self, enc_outputs, enc_valid_lens, *args):
        outputs, hidden_state = enc_outputs
        return (outputs.swapaxes(0, 1), hidden_state, enc_valid_lens)

    def forward(self, X, state):
        enc_outputs, hidden_state, enc_valid_lens = state
        X = self.embedding(X).swapaxes(0, 1)
        outputs, self._attention_weights = [], []
        for x in X:
            query = np.expand_dims(hidden_state[0][-1], axis=1)
            context = self.attention(query, enc_outputs, enc_outputs, enc_valid_lens)
            x = np.concatenate((context, np.expand_dims(x, axis=1)), axis=-1)
            out, hidden_state = self.rnn(x.swapaxes(0, 1), hidden_state)
            outputs.append(out)
            self._attention_weights.append(self.attention.attention_weights)
        outputs = self.dense(np.concatenate(outputs, axis=0))
        return outputs.swapaxes(0, 1), [enc_outputs, hidden_state, enc_valid_lens]

    @property
    def attention_weights(self):
        return self._attention_weights


# -- chapter 11: multi-head attention, positional encoding, Transformer encoder --------------------


def transpose_qkv(X, num_heads):
    X = X.reshape(X.shape[0], X.shape[1], num_heads, -1)
    X = X.transpose(0, 2, 1, 3)
    return X.reshape(-1, X.shape[2], X.shape[3])


def transpose_output(X, num_heads):
    X = X.reshape(-1, num_heads, X.shape[1], X.shape[2])
    X = X.transpose(0, 2, 1, 3)
    return X.reshape(X.shape[0], X.shape[1], -1)


class MultiHeadAttention(nn.Block):
    def __init__(self, num_hiddens, num_heads, dropout, use_bias=False, **kwargs):
        super(MultiHeadAttention, self).__init__(**kwargs)
        self.num_heads = num_heads
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.Dense(num_hiddens, use_bias=use_bias, flatten=False)
        self.W_k = nn.Dense(num_hiddens, use_bias=use_bias, flatten=False)
        self.W_v = nn.Dense(num_hiddens, use_bias=use_bias, flatten=False)
        self.W_o = nn.Dense(num_hiddens, use_bias=use_bias, flatten=False)

    def forward(self, queries, keys, values, valid_lens):
        queries = transpose_qkv(self.W_q(queries), self.num_heads)
        keys = transpose_qkv(self.W_k(keys), self.num_heads)
        values = transpose_qkv(self.W_v(values), self.num_heads)
        if valid_lens is not None:
            valid_lens = valid_lens.repeat(self.num_heads, axis=0)
        output = self.attention(queries, keys, values, valid_lens)
        output_concat = transpose_output(output, self.num_heads)
        return self.W_o(output_concat)


class PositionalEncoding(nn.Block):
    def __init__(self, num_hiddens, dropout, max_len=1000):
        super(PositionalEncoding, self).__init__()
        self.dropout = nn.Dropout(dropout)
        self.P = np.zeros((1, max_len, num_hiddens))
        X = np.arange(max_len).reshape(-1, 1) / np.power(10000, np.arange(0, num_hiddens, 2) / num_hiddens)
        self.P[:, :, 0::2] = np.sin(X)
        self.P[:, :, 1::2] = np.cos(X)

    def forward(self, X):
        X = X + self.P[:, :X.shape[1], :]
        return self.dropout(X)


class PositionWiseFFN(nn.Block):
    def __init__(self, ffn_num_hiddens, ffn_num_outputs, **kwargs):
        super(PositionWiseFFN, self).__init__(**kwargs)
        self.dense1 = nn.Dense(ffn_num_hiddens, flatten=False, activation='relu')
        self.dense2 = nn.Dense(ffn_num_outputs, flatten=False)

    def forward(self, X):
        return self.dense2(self.dense1(X))


class AddNorm(nn.Block):
    def __init__(self, dropout, **kwargs):
        super(AddNorm, self).__init__(**kwargs)
        self.dropout = nn.Dropout(dropout)
        self.ln = nn.LayerNorm()

    def forward(self, X, Y):
        return self.ln(self.dropout(Y) + X)


class EncoderBlock(nn.Block):
    def __init__(self, num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias=False, **kwargs):
        super(EncoderBlock, self).__init__(**kwargs)
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm2 = AddNorm(dropout)

    def forward(self, X, valid_lens):
        Y = self.addnorm1(X, self.attention(X, X, X, valid_lens))
        return self.addnorm2(Y, self.ffn(Y))


class TransformerEncoder(Encoder):
    def __init__(self, vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_layers, dropout,
                 use_bias=False, **kwargs):
        super(TransformerEncoder, self).__init__(**kwargs)
        self.num_hiddens = num_hiddens
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.blks = nn.Sequential()
        for _ in range(num_layers):
            self.blks.add(EncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias))

    def forward(self, X, valid_lens, *args):
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))
        self.attention_weights = [None] * len(self.blks)
        for i, blk in enumerate(self.blks):
            X = blk(X, valid_lens)
            self.attention_weights[i] = blk.attention.attention.attention_weights
        return X


class DecoderBlock(nn.Block):
    # The `i`-th block in the decoder
    def __init__(self, num_hiddens, ffn_num_hiddens, num_heads, dropout, i, **kwargs):
        super(DecoderBlock, self).__init__(**kwargs)
        self.i = i
        self.attention1 = MultiHeadAttention(num_hiddens, num_heads, dropout)
        self.addnorm1 = AddNorm(dropout)
        self.attention2 = MultiHeadAttention(num_hiddens, num_heads, dropout)
        self.addnorm2 = AddNorm(dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm3 = AddNorm(dropout)

    def forward(self, X, state):
        enc_outputs, enc_valid_lens = state[0], state[1]
        if state[2][self.i] is None:
            key_values = X
        else:
            key_values = np.concatenate((state[2][self.i], X), axis=1)
        state[2][self.i] = key_values

        if autograd.is_training():
            batch_size, num_steps, _ = X.shape
            dec_valid_lens = np.tile(np.arange(1, num_steps + 1, ctx=X.ctx), (batch_size, 1))
        else:
            dec_valid_lens = None

        X2 = self.attention1(X, key_values, key_values, dec_valid_lens)
        Y = self.addnorm1(X, X2)
        Y2 = self.attention2(Y, enc_outputs, enc_outputs, enc_valid_lens)
        Z = self.addnorm2(Y, Y2)
        return self.addnorm3(Z, self.ffn(Z)), state


class TransformerDecoder(Decoder):
    def __init__(self, vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_layers, dropout, **kwargs):
        super(TransformerDecoder, self).__init__(**kwargs)
        self.num_hiddens = num_hiddens
        self.num_layers = num_layers
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout)
        self.blks = nn.Sequential()
        for i in range(num_layers):
            self.blks.add(DecoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, i))
        self.dense = nn.Dense(vocab_size, flatten=False)

    def init_state(self, enc_outputs, enc_valid_lens, *args):
        return [enc_outputs, enc_valid_lens, [None] * self.num_layers]

    def forward(self, X, state):
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))
        self._attention_weights = [[None] * len(self.blks) for _ in range(2)]
        for i, blk in enumerate(self.blks):
            X, state = blk(X, state)
            self._attention_weights[0][i] = blk.attention1.attention.attention_weights
            self._attention_weights[1][i] = blk.attention2.attention.attention_weights
        return self.dense(X), state

    @property
    def attention_weights(self):
        return self._attention_weights


# -- the check: export, load in a fresh process, compare at several batch sizes -----------------

FRESH = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import modelpack
    from modelpack.nn import structure

    net = modelpack.load(sys.argv[1])
    with np.load(sys.argv[2]) as data:
        arrays = dict(data)
    trees = json.loads(open(sys.argv[3]).read())
    results = {}
    for batch, tree in trees.items():
        leaves = [arrays[f"{batch}/{i}"] for i in range(structure.count(tree))]
        out_tree, outs = structure.flatten(net(*structure.unflatten(tree, leaves)))
        results[batch] = out_tree
        arrays.update({f"out{batch}/{i}": a for i, a in enumerate(outs)})
    np.savez(sys.argv[4], **{k: v for k, v in arrays.items() if k.startswith("out")})
    open(sys.argv[5], "w").write(json.dumps(results))
    """
)


def _exported_matches_in_fresh_process(tmp_path, net, make_args, **export_options):
    """Export with ``make_args(2)``; a fresh process loads it and runs ``make_args(b)`` for each
    batch size; its outputs must equal ``net``'s here."""
    modelpack.export(net, tmp_path / "model.mpk", example=make_args(2), **export_options)
    arrays, trees, expected = {}, {}, {}
    for batch in BATCHES:
        args = make_args(batch)
        tree, leaves = structure.flatten(list(args))
        trees[str(batch)] = tree
        arrays.update({f"{batch}/{i}": a for i, a in enumerate(leaves)})
        expected[str(batch)] = structure.flatten(net(*args))
    np.savez(tmp_path / "inputs.npz", **arrays)
    (tmp_path / "trees.json").write_text(json.dumps(trees))
    script = tmp_path / "fresh.py"
    script.write_text(FRESH)
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "model.mpk"), str(tmp_path / "inputs.npz"),
         str(tmp_path / "trees.json"), str(tmp_path / "outputs.npz"), str(tmp_path / "out_trees.json")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    got_trees = json.loads((tmp_path / "out_trees.json").read_text())
    with np.load(tmp_path / "outputs.npz") as outputs:
        for batch in BATCHES:
            want_tree, want = expected[str(batch)]
            assert got_trees[str(batch)] == want_tree
            for i, value in enumerate(want):
                got = outputs[f"out{batch}/{i}"]
                assert got.shape == np.shape(value) and got.dtype == np.asarray(value).dtype
                np.testing.assert_allclose(got, value, rtol=RTOL, atol=RTOL * float(np.max(np.abs(value))))
    return modelpack.inspect(tmp_path / "model.mpk")


VOCAB, STEPS = 28, 5


def _tokens(rng, batch, steps=STEPS, vocab=VOCAB):
    return rng.integers(0, vocab, size=(batch, steps)).astype(np.float32)


@pytest.mark.parametrize(
    "make_layer",
    [lambda: rnn.RNN(16), lambda: rnn.GRU(16), lambda: rnn.LSTM(16), lambda: rnn.LSTM(16, num_layers=2),
     lambda: rnn.LSTM(8, num_layers=2, bidirectional=True)],
    ids=["rnn", "gru", "lstm", "deep_lstm", "bidirectional_lstm"],
)
def test_rnn_language_model(tmp_path, make_layer):
    net = RNNModel(make_layer(), VOCAB)
    net.initialize(seed=0)
    rng = np.random.default_rng(1)

    def args(batch):
        state = [rng.normal(size=s.shape).astype(np.float32) for s in net.begin_state(batch_size=batch)]
        return (_tokens(rng, batch), state)

    net(*args(2))
    dynamic = {0: {0: "batch"}, **{1 + i: {1: "batch"} for i in range(len(net.begin_state(batch_size=1)))}}
    manifest = _exported_matches_in_fresh_process(tmp_path, net, args, dynamic_batch=False, dynamic_axes=dynamic)
    assert manifest.architecture.children["rnn"].type in ("RNN", "GRU", "LSTM")  # declarative, not traced


def test_time_major_states_with_the_default_dynamic_batch_name_the_fix():
    net = RNNModel(rnn.GRU(8), VOCAB)
    net.initialize(seed=0)
    x, state = _tokens(np.random.default_rng(0), 2), net.begin_state(batch_size=2)
    net(x, state)
    with pytest.raises(UsageError) as caught:
        modelpack.export(net, "unused.mpk", example=(x, state))
    message = str(caught.value)
    assert "dynamic dimension 'batch' has different sizes in the example (input 0 axis 0: 2, input 1 axis 0: 1)" in message
    assert "dynamic_batch=False and dynamic_axes" in message and len(message.splitlines()) <= 10


def test_gru_from_scratch(tmp_path):
    net = GRUScratch(VOCAB, 12)
    net.initialize(seed=0)
    rng = np.random.default_rng(2)

    def args(batch):
        return (_tokens(rng, batch), (rng.normal(size=(batch, 12)).astype(np.float32),))

    _exported_matches_in_fresh_process(tmp_path, net, args)


def _seq2seq_args(rng, batch):
    valid = rng.integers(1, STEPS + 1, size=batch).astype(np.float32)
    return (_tokens(rng, batch, vocab=10), _tokens(rng, batch, vocab=10), valid)


def test_seq2seq(tmp_path):
    net = EncoderDecoder(Seq2SeqEncoder(10, 8, 16, 2), Seq2SeqDecoder(10, 8, 16, 2))
    net.initialize(seed=0)
    rng = np.random.default_rng(3)
    _exported_matches_in_fresh_process(tmp_path, net, lambda b: _seq2seq_args(rng, b)[:2])


def test_seq2seq_with_attention(tmp_path):
    net = EncoderDecoder(Seq2SeqEncoder(10, 8, 16, 2), Seq2SeqAttentionDecoder(10, 8, 16, 2))
    net.initialize(seed=0)
    rng = np.random.default_rng(4)
    manifest = _exported_matches_in_fresh_process(tmp_path, net, lambda b: _seq2seq_args(rng, b))
    assert manifest.architecture.children["decoder"].children["rnn"].type == "GRU"


def test_transformer_encoder_block(tmp_path):
    net = EncoderBlock(24, 48, 4, 0.5)
    net.initialize(seed=0)
    rng = np.random.default_rng(5)

    def args(batch):
        return (rng.normal(size=(batch, 6, 24)).astype(np.float32), rng.integers(1, 7, size=batch).astype(np.float32))

    _exported_matches_in_fresh_process(tmp_path, net, args)


def test_transformer_encoder(tmp_path):
    net = TransformerEncoder(200, 24, 48, 8, 2, 0.5)
    net.initialize(seed=0)
    rng = np.random.default_rng(6)

    def args(batch):
        return (_tokens(rng, batch, steps=7, vocab=200), rng.integers(1, 8, size=batch).astype(np.float32))

    _exported_matches_in_fresh_process(tmp_path, net, args)


def test_transformer(tmp_path):
    encoder = TransformerEncoder(50, 16, 32, 4, 2, 0.1)
    decoder = TransformerDecoder(40, 16, 32, 4, 2, 0.1)
    net = EncoderDecoder(encoder, decoder)
    net.initialize(seed=0)
    rng = np.random.default_rng(8)

    def args(batch):
        valid = rng.integers(1, 7, size=batch).astype(np.float32)
        return (_tokens(rng, batch, steps=6, vocab=50), _tokens(rng, batch, steps=4, vocab=40), valid)

    _exported_matches_in_fresh_process(tmp_path, net, args)


def test_transformer_decoder_step_with_none_in_its_state(tmp_path):
    """A decoding step as ``predict_seq2seq`` runs it: the state holds None per block at first."""
    decoder = TransformerDecoder(40, 16, 32, 4, 2, 0.1)
    decoder.initialize(seed=0)
    rng = np.random.default_rng(9)

    def args(batch):
        enc_outputs = rng.normal(size=(batch, 6, 16)).astype(np.float32)
        state = decoder.init_state(enc_outputs, rng.integers(1, 7, size=batch).astype(np.float32))
        return (_tokens(rng, batch, steps=1, vocab=40), state)

    _exported_matches_in_fresh_process(tmp_path, decoder, args)


def test_data_dependent_control_flow_is_refused_naming_the_line():
    class Greedy(nn.Block):
        def __init__(self):
            super().__init__()
            self.rnn = rnn.GRU(4)

        def forward(self, X):
            Y = self.rnn(X)
            if Y.max() > 0:  # Python control flow on tensor values
                Y = -Y
            return Y

    net = Greedy()
    net.initialize(seed=0)
    x = np.ones((3, 2, 5), dtype=np.float32)
    net(x)
    with pytest.raises(TraceError, match=r"bool\(\) of a traced value.*test_d2l_models\.py:\d+: if Y\.max\(\) > 0:"):
        modelpack.export(net, "unused.mpk", example=x, dynamic_batch=False)
