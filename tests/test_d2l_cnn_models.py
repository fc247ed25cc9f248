# ruff: noqa: UP008  (the book's super(Class, self) calls are kept as written)
"""Dive into Deep Learning's CNN chapters (7.5 batch norm from scratch, 7.4 GoogLeNet, 7.6
ResNet, 7.7 DenseNet), written as the book writes them with only the imports changed, trained
one step (so batch statistics move), exported, loaded and matched bitwise at batch sizes 1, 2, 7.
"""

from __future__ import annotations

import io

import pytest

import modelpack
from modelpack import autograd, gluon, init, np, npx
from modelpack.gluon import nn


def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    if not autograd.is_training():
        X_hat = (X - moving_mean) / np.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(axis=0)
            var = ((X - mean) ** 2).mean(axis=0)
        else:
            mean = X.mean(axis=(0, 2, 3), keepdims=True)
            var = ((X - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
        X_hat = (X - mean) / np.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var = momentum * moving_var + (1.0 - momentum) * var
    Y = gamma * X_hat + beta
    return Y, moving_mean, moving_var

class BatchNorm(nn.Block):
    def __init__(self, num_features, num_dims, **kwargs):
        super().__init__(**kwargs)
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        self.gamma = self.params.get('gamma', shape=shape, init=init.One())
        self.beta = self.params.get('beta', shape=shape, init=init.Zero())
        self.moving_mean = np.zeros(shape)
        self.moving_var = np.ones(shape)

    def forward(self, X):
        if self.moving_mean.ctx != X.ctx:
            self.moving_mean = self.moving_mean.copyto(X.ctx)
            self.moving_var = self.moving_var.copyto(X.ctx)
        Y, self.moving_mean, self.moving_var = batch_norm(
            X, self.gamma.data(), self.beta.data(), self.moving_mean,
            self.moving_var, eps=1e-12, momentum=0.9)
        return Y

def lenet_bn():
    net = nn.Sequential()
    net.add(nn.Conv2D(6, kernel_size=5),
            BatchNorm(6, num_dims=4),
            nn.Activation('sigmoid'),
            nn.AvgPool2D(pool_size=2, strides=2),
            nn.Conv2D(16, kernel_size=5),
            BatchNorm(16, num_dims=4),
            nn.Activation('sigmoid'),
            nn.AvgPool2D(pool_size=2, strides=2),
            nn.Dense(120),
            BatchNorm(120, num_dims=2),
            nn.Activation('sigmoid'),
            nn.Dense(84),
            BatchNorm(84, num_dims=2),
            nn.Activation('sigmoid'),
            nn.Dense(10))
    return net

class Residual(nn.Block):
    def __init__(self, num_channels, use_1x1conv=False, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.conv1 = nn.Conv2D(num_channels, kernel_size=3, padding=1, strides=strides)
        self.conv2 = nn.Conv2D(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2D(num_channels, kernel_size=1, strides=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm()
        self.bn2 = nn.BatchNorm()

    def forward(self, X):
        Y = npx.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        return npx.relu(Y + X)

class Inception(nn.Block):
    def __init__(self, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)
        self.p1_1 = nn.Conv2D(c1, kernel_size=1, activation='relu')
        self.p2_1 = nn.Conv2D(c2[0], kernel_size=1, activation='relu')
        self.p2_2 = nn.Conv2D(c2[1], kernel_size=3, padding=1, activation='relu')
        self.p3_1 = nn.Conv2D(c3[0], kernel_size=1, activation='relu')
        self.p3_2 = nn.Conv2D(c3[1], kernel_size=5, padding=2, activation='relu')
        self.p4_1 = nn.MaxPool2D(pool_size=3, strides=1, padding=1)
        self.p4_2 = nn.Conv2D(c4, kernel_size=1, activation='relu')

    def forward(self, x):
        p1 = self.p1_1(x)
        p2 = self.p2_2(self.p2_1(x))
        p3 = self.p3_2(self.p3_1(x))
        p4 = self.p4_2(self.p4_1(x))
        return np.concatenate((p1, p2, p3, p4), axis=1)

def conv_block(num_channels):
    blk = nn.Sequential()
    blk.add(nn.BatchNorm(), nn.Activation('relu'), nn.Conv2D(num_channels, kernel_size=3, padding=1))
    return blk

class DenseBlock(nn.Block):
    def __init__(self, num_convs, num_channels, **kwargs):
        super().__init__(**kwargs)
        self.net = nn.Sequential()
        for _ in range(num_convs):
            self.net.add(conv_block(num_channels))

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = np.concatenate((X, Y), axis=1)
        return X

def resnet_block(num_channels, num_residuals, first_block=False):
    blk = nn.Sequential()
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.add(Residual(num_channels, use_1x1conv=True, strides=2))
        else:
            blk.add(Residual(num_channels))
    return blk

def resnet():
    net = nn.Sequential()
    net.add(nn.Conv2D(16, kernel_size=7, strides=2, padding=3), nn.BatchNorm(), nn.Activation('relu'),
            nn.MaxPool2D(pool_size=3, strides=2, padding=1))
    net.add(resnet_block(16, 2, first_block=True), resnet_block(32, 2), nn.GlobalAvgPool2D(), nn.Dense(10))
    return net


def densenet_with_inception():
    net = nn.Sequential()
    net.add(nn.Conv2D(16, 3, padding=1), DenseBlock(2, 10), Inception(8, (4, 8), (2, 4), 4),
            nn.GlobalAvgPool2D(), nn.Dense(10))
    return net


@pytest.mark.parametrize(
    ("make", "shape"),
    [(lenet_bn, (1, 28, 28)), (resnet, (1, 32, 32)), (densenet_with_inception, (3, 16, 16))],
    ids=["lenet-batchnorm-from-scratch", "resnet", "densenet-inception"],
)
def test_chapter_cnn_trains_a_step_exports_and_matches(make, shape):
    modelpack.random.seed(0)
    model = make()
    model.initialize(init=init.Xavier())
    trainer = gluon.Trainer(model.collect_params(), 'sgd', {'learning_rate': 0.1})
    loss = gluon.loss.SoftmaxCrossEntropyLoss()
    X, y = np.random.uniform(size=(4,) + shape), np.array([0, 1, 2, 3])
    with autograd.record():
        l = loss(model(X), y)  # noqa: E741  (the book's name)
    l.backward()
    trainer.step(4)
    buffer = io.BytesIO()
    modelpack.export(model, buffer, example=np.random.uniform(size=(2,) + shape))
    loaded = modelpack.load(io.BytesIO(buffer.getvalue()))
    for batch in (1, 2, 7):
        X = np.random.uniform(size=(batch,) + shape)
        assert (loaded(X) == model(X)).all(), batch
