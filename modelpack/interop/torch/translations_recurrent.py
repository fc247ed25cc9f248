"""How torch's fused recurrent layers (``RNN``, ``LSTM``, ``GRU``) translate to modelpack's
and back, parameter names included, for the table in ``layers``; the shared pieces and the
other families are in ``translations``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .translations import Config, Param, dtype_of, refuse

__all__ = ["recurrent_config", "recurrent_build", "recurrent_params"]


def recurrent_config(mode: str) -> Callable[[Any], Config]:
    def config(m: Any) -> Config:
        c: Config = {
            "hidden_size": m.hidden_size,
            "num_layers": m.num_layers,
            "layout": "NTC" if m.batch_first else "TNC",
            "dropout": float(m.dropout),
            "bidirectional": bool(m.bidirectional),
            "input_size": m.input_size,
            "dtype": dtype_of(m.weight_ih_l0),
        }
        if mode == "RNN":
            c["activation"] = m.nonlinearity
        if mode == "LSTM" and m.proj_size:
            c["projection_size"] = m.proj_size
        return c

    return config


def recurrent_build(mode: str) -> Callable[[Config], tuple[str, Config]]:
    def build(c: Config) -> tuple[str, Config]:
        if c.get("use_sequence_length") or c.get("state_clip_min") is not None or not c["input_size"]:
            raise refuse(
                f"use_sequence_length={c.get('use_sequence_length')}, state_clip_min="
                f"{c.get('state_clip_min')}, input_size={c['input_size']} (torch has no sequence lengths "
                "or state clipping, and needs the input size)"
            )
        kwargs: Config = {
            "input_size": c["input_size"],
            "hidden_size": c["hidden_size"],
            "num_layers": c["num_layers"],
            "batch_first": c["layout"] == "NTC",
            "dropout": c["dropout"],
            "bidirectional": c["bidirectional"],
        }
        if mode == "RNN":
            kwargs["nonlinearity"] = c["activation"]
        if mode == "LSTM" and c.get("projection_size"):
            kwargs["proj_size"] = c["projection_size"]
        return mode, kwargs

    return build


def recurrent_params(c: Config) -> tuple[Param, ...]:
    """Gluon's ``l0_i2h_weight`` (``r`` backwards) is torch's ``weight_ih_l0`` (``_reverse``);
    both order the gates alike (LSTM: i, f, g, o; GRU: r, z, n). torch's ``bias=False`` has
    zero biases in modelpack."""
    params = []
    for layer in range(c["num_layers"]):
        for direction, suffix in enumerate(("", "_reverse")[: 2 if c["bidirectional"] else 1]):
            ours, theirs = f"{'lr'[direction]}{layer}", f"l{layer}{suffix}"
            params += [
                Param(f"{ours}_i2h_weight", f"weight_ih_{theirs}"),
                Param(f"{ours}_h2h_weight", f"weight_hh_{theirs}"),
                Param(f"{ours}_i2h_bias", f"bias_ih_{theirs}", fill="zeros"),
                Param(f"{ours}_h2h_bias", f"bias_hh_{theirs}", fill="zeros"),
            ]
            if c.get("projection_size"):
                params.append(Param(f"{ours}_h2r_weight", f"weight_hr_{theirs}"))
    return tuple(params)
