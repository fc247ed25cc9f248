"""Stand-in arrays (tracing.standins): whatever would turn a traced value into plain Python data,
or change a parameter, is refused with a TraceError naming the operation (and the source line)."""

from __future__ import annotations

import numpy as np
from tracing_helpers import X, refused_export


def test_refuses_control_flow_on_values():
    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return self.fc(-x)

    refused_export(forward, X, r"cannot trace bool\(\) of a traced value: Python control flow .* \(at .*test_standins.py:\d+: if x.sum\(\) > 0:\)")


def test_refuses_numpy_outside_the_op_set():
    refused_export(lambda self, x: self.fc(np.cumprod(x, axis=1)), X, r"cannot trace numpy\.cumprod: it is not in the op set")


def test_refuses_ufunc_outside_the_op_set():
    refused_export(lambda self, x: self.fc(np.cbrt(x)), X, r"cannot trace numpy\.cbrt: it is not in the op set")


def test_refuses_raw_data_escape():
    refused_export(lambda self, x: self.fc(np.asarray(x.tolist())), X, r"cannot trace ndarray\.tolist\(\)")


def test_refuses_method_outside_the_op_set():
    refused_export(lambda self, x: self.fc(x.cumprod(axis=1)), X, r"cannot trace ndarray\.cumprod: it is not in the op set")


def test_refuses_in_place_change_of_a_parameter():
    def forward(self, x):
        w = self.fc.weight.data()
        w += 1.0
        return self.fc(x)

    refused_export(forward, X, r"cannot trace in-place add on parameter 'fc\.weight'")


def test_refuses_item_assignment_into_a_parameter():
    def forward(self, x):
        self.fc.bias.data()[0] = 0.0
        return self.fc(x)

    refused_export(forward, X, r"cannot trace in-place assignment to parameter 'fc\.bias'")


def test_refuses_set_data_during_forward():
    def forward(self, x):
        self.fc.bias.set_data(np.zeros(3, np.float32))
        return self.fc(x)

    refused_export(forward, X, r"cannot trace changing parameter 'fc\.bias'")


def test_refuses_out_argument():
    def forward(self, x):
        y = self.fc(x)
        np.multiply(y, 2.0, out=y)
        return y

    refused_export(forward, X, r"cannot trace numpy\.multiply\(\.\.\., out=\.\.\.\)")
