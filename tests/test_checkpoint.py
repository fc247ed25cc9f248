"""``modelpack.Checkpointer`` and checkpoint archives: what a save holds, what restore picks,
rotation, damaged files, and refusals that change nothing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import modelpack
from modelpack import autograd, gluon, nn
from modelpack.checkpoint import CheckpointWarning
from modelpack.errors import CheckpointError, FormatError, SchemaError, ShapeMismatchError
from modelpack.format.checkpoint import Checkpoint, read_checkpoint, write_checkpoint


def mlp(units: int = 8) -> nn.Sequential:
    net = nn.Sequential()
    net.add(nn.Dense(units, activation="relu"), nn.Dropout(0.5), nn.Dense(3))
    return net


def trained(steps: int = 3, optimizer: str = "adam") -> tuple[nn.Sequential, gluon.Trainer]:
    modelpack.random.seed(0)
    net = mlp()
    net.initialize()
    trainer = gluon.Trainer(net.collect_params(), optimizer, {"learning_rate": 0.1, "momentum": 0.9}
                            if optimizer == "sgd" else {"learning_rate": 0.1})
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    for _ in range(steps):
        with autograd.record():
            loss = net(x).sum()
        loss.backward()
        trainer.step(4)
    return net, trainer


def params_of(net: nn.Block) -> dict[str, bytes]:
    return {name: p.data().tobytes() for name, p in net.collect_params().items()}


def test_save_and_restore_round_trip_everything(tmp_path):
    net, trainer = trained()
    user = np.random.default_rng(3)
    user.normal(size=5)
    ckpt = modelpack.Checkpointer(tmp_path / "run")
    state = {"epoch": 4, "history": [0.5, 0.25], "nested": {"ok": True, "none": None},
             "ema": np.arange(6, dtype=np.float16).reshape(2, 3)}
    path = ckpt.save(12, net, trainer=trainer, rng=user, state=state)
    assert path == tmp_path / "run" / "ckpt-0000000012.mpk" and ckpt.state is not state
    dropout_next = modelpack.random.generator("dropout").random(3)
    user_next = user.random(3)

    modelpack.random.seed(123)  # a fresh process would start elsewhere
    fresh = mlp()
    fresh.initialize()
    fresh_trainer = gluon.Trainer(fresh.collect_params(), "adam", {"learning_rate": 0.5})
    other = np.random.default_rng(999)
    again = modelpack.Checkpointer(tmp_path / "run")
    assert again.restore(fresh, trainer=fresh_trainer, rng=other) == 12
    assert params_of(fresh) == params_of(net)
    assert fresh_trainer.learning_rate == 0.1
    saved, arrays = trainer.export_state()
    restored, restored_arrays = fresh_trainer.export_state()
    assert restored == saved
    for name, slots in arrays.items():
        for slot, array in slots.items():
            assert restored_arrays[name][slot].tobytes() == array.tobytes()
    np.testing.assert_array_equal(modelpack.random.generator("dropout").random(3), dropout_next)
    np.testing.assert_array_equal(other.random(3), user_next)
    assert again.state["epoch"] == 4 and again.state["history"] == [0.5, 0.25]
    assert again.state["nested"] == {"ok": True, "none": None}
    assert again.state["ema"].dtype == np.float16 and again.state["ema"].tolist() == state["ema"].tolist()


def test_archive_is_a_checkpoint_and_loads_as_its_model(tmp_path):
    net, trainer = trained()
    path = modelpack.Checkpointer(tmp_path).save(3, net, trainer=trainer)
    manifest = modelpack.inspect(path)
    assert manifest.kind == "checkpoint" and manifest.checkpoint is not None and manifest.checkpoint.step == 3
    assert manifest.checkpoint.trainer is not None and manifest.checkpoint.trainer.optimizer == "adam"
    assert "trainer:0.weight:mean" in manifest.weights and "trainer:2.bias:var" in manifest.weights
    assert modelpack.verify(path).ok
    loaded = modelpack.load(path)
    assert isinstance(loaded, nn.Sequential) and params_of(loaded) == params_of(net)
    assert params_of(modelpack.load(path, mmap=True)) == params_of(net)


class Custom(nn.Block):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Dense(4, in_units=3)

    def forward(self, x):
        return np.tanh(self.body(x)) * 2


def test_custom_block_checkpoint_restores_by_name_but_does_not_load_alone(tmp_path):
    net = Custom()
    net.initialize(seed=1)
    path = modelpack.Checkpointer(tmp_path).save(1, net)
    assert modelpack.inspect(path).architecture is None
    with pytest.raises(FormatError, match=r"is a checkpoint of a custom Block.*restore\(net\)"):
        modelpack.load(path)
    other = Custom()
    other.initialize(seed=2)
    assert modelpack.Checkpointer(tmp_path).restore(other) == 1
    assert params_of(other) == params_of(net)


def test_rotation_keeps_the_newest(tmp_path):
    net, _ = trained(1)
    ckpt = modelpack.Checkpointer(tmp_path, keep_last=2)
    for step in (5, 10, 15, 20):
        ckpt.save(step, net)
    assert [p.name for p in ckpt.checkpoints()] == ["ckpt-0000000015.mpk", "ckpt-0000000020.mpk"]
    keep_all = modelpack.Checkpointer(tmp_path / "all", keep_last=None)
    for step in range(4):
        keep_all.save(step, net)
    assert len(keep_all.checkpoints()) == 4
    with pytest.raises(modelpack.UsageError, match=r"keep_last must be a positive int or None, got 0"):
        modelpack.Checkpointer(tmp_path, keep_last=0)
    with pytest.raises(modelpack.UsageError, match=r"step must be a non-negative int, got -1"):
        ckpt.save(-1, net)


def test_restore_of_an_empty_folder_is_none(tmp_path):
    net, trainer = trained(1)
    before = params_of(net)
    ckpt = modelpack.Checkpointer(tmp_path / "new")
    assert ckpt.restore(net, trainer=trainer) is None and params_of(net) == before and ckpt.state == {}


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty"])
def test_damaged_newest_is_skipped_with_a_warning_naming_it(tmp_path, damage):
    net, trainer = trained(1)
    ckpt = modelpack.Checkpointer(tmp_path, keep_last=3)
    ckpt.save(1, net, trainer=trainer, state={"at": 1})
    good = params_of(net)
    net2, trainer2 = trained(2)
    newest = ckpt.save(2, net2, trainer=trainer2, state={"at": 2})
    data = newest.read_bytes()
    if damage == "truncate":
        newest.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        middle = len(data) // 2
        newest.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    else:
        newest.write_bytes(b"")
    fresh, fresh_trainer = trained(0)
    with pytest.warns(CheckpointWarning, match=rf"{newest.name}: skipped a damaged checkpoint .*renamed to "
                                               rf"{newest.name}\.damaged"):
        assert ckpt.restore(fresh, trainer=fresh_trainer) == 1
    assert params_of(fresh) == good and ckpt.state == {"at": 1}
    assert [p.name for p in ckpt.checkpoints()] == ["ckpt-0000000001.mpk"]
    assert (tmp_path / f"{newest.name}.damaged").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quarantined: it is not read (nor warned about) again
        assert ckpt.restore(fresh, trainer=fresh_trainer) == 1


def test_a_checkpoint_that_does_not_fit_changes_nothing(tmp_path):
    net, trainer = trained(2)
    ckpt = modelpack.Checkpointer(tmp_path)
    ckpt.save(2, net, trainer=trainer, rng=np.random.default_rng(0))
    small = mlp(units=4)
    small.initialize()
    small(np.zeros((1, 5), np.float32))
    before = params_of(small)
    with pytest.raises(ShapeMismatchError, match=r"'0\.weight' expected shape \(4, 5\).*found \(8, 5\)"):
        ckpt.restore(small, rng=np.random.default_rng(1))
    assert params_of(small) == before

    same, _ = trained(1)
    before = params_of(same)
    sgd = gluon.Trainer(same.collect_params(), "sgd", {"momentum": 0.9})
    with pytest.raises(CheckpointError, match=r"trainer state is for optimizer 'adam', this trainer uses 'sgd'"):
        ckpt.restore(same, trainer=sgd, rng=np.random.default_rng(1))
    with pytest.raises(CheckpointError, match=r"holds generators \['0'\], but restore was given \[\]"):
        ckpt.restore(same, trainer=trainer)
    with pytest.raises(CheckpointError, match=r"holds 0 data loaders, restore was given 1"):
        loader = gluon.data.DataLoader(gluon.data.ArrayDataset(np.zeros(4)), batch_size=2)
        ckpt.restore(same, rng=np.random.default_rng(1), data=loader)
    assert params_of(same) == before


def test_unsavable_generator_and_state_are_refused(tmp_path):
    net, _ = trained(1)
    ckpt = modelpack.Checkpointer(tmp_path)
    with pytest.raises(modelpack.UsageError, match=r"cannot save the state of 'rng\[0\]': its bit generator "
                                                      r"is MT19937"):
        ckpt.save(1, net, rng=np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(modelpack.UsageError, match=r"cannot write the checkpoint: state\.bad"):
        ckpt.save(1, net, state={"bad": {1, 2}})
    assert ckpt.checkpoints() == []


def test_trainer_save_states_and_load_states(tmp_path):
    net, trainer = trained(3)
    trainer.save_states(tmp_path / "trainer.states")
    assert modelpack.inspect(tmp_path / "trainer.states").kind == "checkpoint"
    other = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.7})
    other.load_states(tmp_path / "trainer.states")
    assert other.export_state()[0] == trainer.export_state()[0]
    with pytest.raises(CheckpointError, match=r"holds no trainer state"):
        other.load_states(modelpack.Checkpointer(tmp_path / "c").save(0, net))
    modelpack.export(net, tmp_path / "model.mpk")
    with pytest.raises(FormatError, match=r"model\.mpk is not a checkpoint: its kind is 'model'"):
        other.load_states(tmp_path / "model.mpk")


def test_manifest_rules_for_checkpoints(tmp_path):
    write_checkpoint(tmp_path / "c.mpk", Checkpoint(step=0, state={"k": 1}))
    assert read_checkpoint(tmp_path / "c.mpk").state == {"k": 1}
    base = modelpack.inspect(tmp_path / "c.mpk").model_dump(mode="json", exclude_none=True)
    from modelpack.format.schema import Manifest

    without = {**base}
    without.pop("checkpoint")
    with pytest.raises(Exception, match=r"has 'checkpoint' exactly when its kind is 'checkpoint'"):
        Manifest.model_validate(without)
    odd = {**base, "weights": {"optimizer:x": {"dtype": "float32", "shape": [1]}}}
    with pytest.raises(Exception, match=r"checkpoint tensor 'optimizer:x': a name with ':' starts with one of"):
        Manifest.model_validate(odd)
    with pytest.raises(Exception, match=r"has 'checkpoint' exactly when"):
        Manifest.model_validate({**base, "kind": "model", "architecture": {"type": "Sequential"}})
    assert issubclass(SchemaError, FormatError)


def test_restore_fills_deferred_shapes_and_training_continues(tmp_path):
    net, trainer = trained(2)
    ckpt = modelpack.Checkpointer(tmp_path)
    ckpt.save(2, net, trainer=trainer)
    fresh = mlp()
    fresh.initialize()  # shapes unknown until a forward: restore fills them from the file
    fresh_trainer = gluon.Trainer(fresh.collect_params(), "adam", {"learning_rate": 0.1})
    assert ckpt.restore(fresh, trainer=fresh_trainer) == 2
    assert fresh[0].weight.shape == (8, 5)
    x = np.ones((2, 5), np.float32)
    with autograd.record():
        loss = fresh(x).sum()
    loss.backward()
    fresh_trainer.step(2)
    assert fresh_trainer.export_state()[0].update_counts["0.weight"] == 3


def test_a_save_below_newer_steps_keeps_the_file_it_wrote(tmp_path):
    net, _ = trained(1)
    ckpt = modelpack.Checkpointer(tmp_path, keep_last=2)
    for step in (10, 20):
        ckpt.save(step, net)
    written = ckpt.save(5, net)  # the oldest step by number, but the newest file: never rotated away
    assert written.exists() and len(ckpt.checkpoints()) == 3


def test_restore_refuses_generators_of_another_kind(tmp_path):
    net, _ = trained(1)
    ckpt = modelpack.Checkpointer(tmp_path)
    ckpt.save(1, net, rng={"noise": np.random.default_rng(0)})
    other = np.random.Generator(np.random.PCG64DXSM(0))
    with pytest.raises(CheckpointError, match=r"generator 'noise' was saved as PCG64, the one given is PCG64DXSM"):
        ckpt.restore(net, rng={"noise": other})


def test_bad_state_and_tensor_names_are_refused(tmp_path):
    net, _ = trained(1)
    ckpt = modelpack.Checkpointer(tmp_path)
    with pytest.raises(modelpack.UsageError, match=r"checkpoint state keys must be str, found 3"):
        ckpt.save(1, net, state={3: "x"})
    with pytest.raises(modelpack.UsageError, match=r"tensor name 'state:a/b' is not allowed"):
        ckpt.save(1, net, state={"a/b": np.zeros(2)})
    with pytest.raises(modelpack.UsageError, match=r"cannot write the checkpoint: metadata\.a: Input should be a "
                                                   r"valid string"):
        ckpt.save(1, net, metadata={"a": 1})  # type: ignore[dict-item]
    for name, why in (("trainer:x", "is not 'trainer:<parameter>:<slot>'"),
                      ("data:0:order", "names data loader 0, but the checkpoint has 0")):
        write_checkpoint(tmp_path / "odd.mpk", Checkpoint(step=0, model={name: np.zeros(2)}))
        with pytest.raises(FormatError, match=rf"odd\.mpk: (checkpoint )?tensor '{name}' .*{why}"):
            read_checkpoint(tmp_path / "odd.mpk")


def test_a_checkpoint_whose_optimizer_options_would_break_training_is_refused(tmp_path):
    # A crafted checkpoint (its hashes right): Adam's beta2 of 1e308 restored raised an
    # OverflowError at the next step; now the restore refuses it, naming the file, changing nothing.
    from craft import edit

    net, trainer = trained(1)
    path = modelpack.Checkpointer(tmp_path).save(1, net, trainer=trainer)
    path.write_bytes(edit(path.read_bytes(),
                          manifest=lambda d: d["checkpoint"]["trainer"]["options"].update(beta2=1e308)))
    other, other_trainer = trained(2)
    before = params_of(other)
    with pytest.raises(CheckpointError, match=rf"{path.name}: the trainer state's options are refused: optimizer "
                                              r"'adam': option beta2=1e\+308 is a decay rate, in \[0, 1\)"):
        modelpack.Checkpointer(tmp_path).restore(other, trainer=other_trainer)
    assert params_of(other) == before and other_trainer.optimizer.options["beta2"] == 0.999
