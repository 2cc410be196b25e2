"""The shared trainer on CPU: it learns, checkpoints and resumes exactly, shards under torchrun,
preloads with the same results, and the ``dsreg train`` command writes what it says."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import dsreg
from dsreg.cli import cli
from dsreg.cli.train import _forwarded, pick_splits, settings_from_options, train_cmd
from dsreg.errors import ConfigError
from dsreg.train import CHECKPOINT, FALLBACKS, METRICS, Trainer, TrainSettings, load_checkpoint, pick_device, pick_precision

import trainsets
from trainsets import ALL, Stripes, add_default_models, state_equal

# The shared fixtures, bound here by name: pytest finds a module's fixtures among its globals.
one_thread, registry = trainsets.one_thread, trainsets.registry

TESTS = Path(__file__).parent


class Recording:
    """Cross-entropy that records every training loss (and can fail on a given call, like a crash)."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.values: list[float] = []
        self.fail_at = fail_at

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            if self.fail_at is not None and len(self.values) == self.fail_at:
                raise RuntimeError("simulated crash")
            loss = torch.nn.functional.cross_entropy(logits, target)
            self.values.append(loss.item())
            return loss
        return torch.nn.functional.cross_entropy(logits, target)


# -- learning ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dataset,model,epochs,lr,floor",
    [
        ("stripes", "image-mlp", 4, 3e-3, 0.95),
        ("stripes", "image-cnn", 2, 3e-3, 0.95),
        ("tokens", "text-bag", 8, 1e-2, 0.90),
        ("tones", "audio-cnn", 4, 3e-3, 0.90),
    ],
)
def test_fit_and_evaluate_reach_a_stated_accuracy_on_easy_data(registry, dataset, model, epochs, lr, floor):
    trainer = Trainer(model, dataset, f"{dataset}:test", epochs=epochs, batch_size=32, lr=lr, quiet=True)
    history = trainer.fit()
    assert [row["epoch"] for row in history] == list(range(1, epochs + 1))
    assert history[-1]["loss"] < history[0]["loss"]
    result = trainer.evaluate()
    assert result["accuracy"] >= floor, result
    assert result["examples"] == len(dsreg.load(dataset, split="test"))
    assert set(result["per_class"]) == set(trainer.classes)
    assert history[-1]["eval_accuracy"] == result["accuracy"]


def test_per_class_accuracy_counts_each_class(registry):
    trainer = Trainer("image-mlp", "stripes", epochs=1, batch_size=64, lr=1e-9, quiet=True, schedule="constant")
    result = trainer.evaluate("stripes:test[:10]")  # 10 examples: labels 0,1,2,3,0,1,2,3,0,1
    assert result["examples"] == 10
    hits = sum(v * n for v, n in zip(result["per_class"].values(), (3, 3, 2, 2)))
    assert round(hits) == round(result["accuracy"] * 10)


def test_epoch_lines_and_quiet_mode(registry):
    lines: list[str] = []
    Trainer("image-mlp", "stripes", "stripes:test", epochs=2, batch_size=64, log=lines.append).fit()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  loss ") and "| eval loss" in lines[0] and "ex/s" in lines[0]
    quiet: list[str] = []
    Trainer("image-mlp", "stripes", epochs=1, batch_size=64, log=quiet.append, quiet=True).fit()
    assert quiet == []


def test_device_and_precision_choice_on_cpu():
    if not torch.cuda.is_available():
        assert pick_device("auto").type in ("cpu", "mps")
        assert pick_precision("auto", torch.device("cpu")) == "fp32"
        with pytest.raises(ConfigError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        pick_precision("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="not one of auto, fp32, bf16, fp16"):
        pick_precision("fp8", torch.device("cpu"))


def test_bf16_autocast_trains_on_cpu(registry):
    trainer = Trainer("image-mlp", "stripes", "stripes:test", epochs=2, batch_size=32, lr=3e-3, precision="bf16", quiet=True)
    trainer.fit()
    assert trainer.evaluate()["accuracy"] >= 0.9


def test_a_plain_module_with_a_tensor_input(registry):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(144, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    trainer = Trainer(
        model, "stripes", "stripes:test", epochs=4, batch_size=32, lr=3e-3, quiet=True, inputs=lambda batch: batch["image"].float() / 255
    )
    trainer.fit()
    assert trainer.model_name == "Sequential" and trainer.evaluate()["accuracy"] >= 0.9


# -- checkpoints ------------------------------------------------------------------------------
KILLED_RUN = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
from trainsets import Stripes, training_registry
from dsreg.train import Trainer

torch.set_num_threads(1)
steps = [0]

def loss(logits, target):
    steps[0] += 1
    if steps[0] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no exception handler: a real kill
    return torch.nn.functional.cross_entropy(logits, target)

with training_registry(Stripes):
    Trainer("image-cnn", "stripes", loss=loss, out_dir=sys.argv[1], **{settings!r}).fit()
"""


@pytest.mark.slow
def test_checkpoint_kill_resume_gives_the_same_weights(registry, tmp_path):
    settings = dict(epochs=3, batch_size=48, lr=3e-3, seed=7, quiet=True)
    whole = Trainer("image-cnn", "stripes", **settings)
    whole.fit()

    # 11 steps an epoch: the process dies in the middle of epoch 3, after epoch 2's checkpoint.
    script = tmp_path / "killed.py"
    script.write_text(KILLED_RUN.format(tests=str(TESTS), kill_at=2 * 11 + 5, settings=settings))
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(script), str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 2
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind

    resumed = Trainer("image-cnn", "stripes", **settings, out_dir=out, resume=True)
    assert resumed.epoch == 2 and len(resumed.history) == 2
    resumed.fit()
    assert state_equal(resumed.module.state_dict(), whole.module.state_dict())
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in whole.history]


def test_a_crash_mid_epoch_resumes_in_process_too(registry, tmp_path):
    settings = dict(epochs=2, batch_size=64, lr=3e-3, seed=1, quiet=True)
    whole = Trainer("image-mlp", "stripes", **settings)
    whole.fit()
    with pytest.raises(RuntimeError, match="simulated crash"):
        Trainer("image-mlp", "stripes", **settings, loss=Recording(fail_at=8 + 3), out_dir=tmp_path).fit()
    resumed = Trainer("image-mlp", "stripes", **settings, out_dir=tmp_path, resume=True)
    resumed.fit()
    assert state_equal(resumed.module.state_dict(), whole.module.state_dict())


def test_checkpoint_is_weights_only_loadable_and_plain(registry, tmp_path):
    trainer = Trainer("image-mlp", "stripes", epochs=1, batch_size=64, quiet=True, out_dir=tmp_path)
    trainer.fit()
    ckpt = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["dataset"] == {"name": "stripes", "version": "1.0.0", "config": {"n": 512}, "split": "train"}
    assert ckpt["settings"]["model"] == "image-mlp" and ckpt["classes"] == list(trainer.classes)
    assert {"torch", "python", "numpy"} <= set(ckpt["rng"][0])
    assert set(ckpt["model"]) == set(trainer.module.state_dict())
    metrics = json.loads((tmp_path / METRICS).read_text())
    assert metrics["history"][0]["epoch"] == 1 and metrics["parameters"] > 0


def test_resume_refuses_another_dataset(registry, tmp_path):
    Trainer("image-mlp", "stripes", epochs=1, batch_size=64, quiet=True, out_dir=tmp_path).fit()
    with pytest.raises(ConfigError, match="was trained on stripes 1.0.0 {'n': 512}, not stripes 1.0.0 {'n': 256}"):
        Trainer("image-mlp", "stripes", config={"n": 256}, epochs=1, quiet=True, out_dir=tmp_path, resume=True)


def test_resume_of_a_finished_run_trains_no_more(registry, tmp_path):
    first = Trainer("image-mlp", "stripes", epochs=1, batch_size=64, quiet=True, out_dir=tmp_path)
    first.fit()
    again = Trainer("image-mlp", "stripes", epochs=1, batch_size=64, quiet=True, out_dir=tmp_path, resume=True, loss=Recording())
    assert again.fit() == first.history and again.loss_fn.values == []
    assert state_equal(again.module.state_dict(), first.module.state_dict())


# -- the device-resident path -----------------------------------------------------------------
def test_preload_gives_the_same_loss_trajectory_as_the_dataloader(registry):
    runs = {}
    for preload in (False, True):
        loss = Recording()
        trainer = Trainer(
            "image-mlp", "stripes", "stripes:test", epochs=2, batch_size=40, lr=3e-3, seed=3, preload=preload, quiet=True, loss=loss
        )
        assert trainer.preloaded is preload
        trainer.fit()
        runs[preload] = (loss.values, trainer.evaluate(), trainer.module.state_dict())
    assert len(runs[True][0]) == 2 * 13 and runs[True][0] == runs[False][0]
    assert runs[True][1] == runs[False][1]
    assert state_equal(runs[True][2], runs[False][2])


def test_preload_refuses_variable_length_columns(registry):
    with pytest.raises(ConfigError, match="tokens has variable-length or decoded columns; it cannot be preloaded"):
        Trainer("text-bag", "tokens", preload=True, quiet=True)


# -- torchrun: tests/test_multinode.py (two nodes, through dsreg train) and examples/torchrun_check.py
# (one node, two ranks of the Python Trainer, run by tests/test_examples.py) train under torchrun and
# check disjoint shards that cover the split, a reshuffle per epoch and identical weights.


# -- the command --------------------------------------------------------------------------------
def test_dsreg_train_prints_epochs_and_test_accuracy_and_writes_files(registry, tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "tokens", "--epochs", "3", "--lr", "0.01", "--batch-size", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("tokens: text-bag (") and "256 train examples, eval on validation" in lines[0]
    assert [line.split()[1] for line in lines if line.startswith("epoch")] == ["1/3", "2/3", "3/3"]
    assert any(line.startswith("test (test): loss ") and "on 64 examples" in line for line in lines)
    assert lines[-1] == f"wrote {out / CHECKPOINT} and {out / METRICS}"
    metrics = json.loads((out / METRICS).read_text())
    assert metrics["test"]["examples"] == 64 and metrics["test"]["split"] == "test"
    assert metrics["history"][-1]["eval_accuracy"] is not None
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 3


def test_dsreg_train_json_and_resume(registry, tmp_path):
    out = tmp_path / "run"
    first = CliRunner().invoke(cli, ["train", "stripes", "--epochs", "1", "--out", str(out), "--json", "-c", "n=128"])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli, ["train", "stripes", "--epochs", "2", "--out", str(out), "--resume", "--json", "-c", "n=128"])
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert [row["epoch"] for row in data["history"]] == [1, 2] and data["dataset"]["config"] == {"n": 128}
    assert data["test"]["examples"] == 32 and data["out"] == str(out)
    assert (
        "resumed from" in again.stderr
        and "after epoch 1; settings changed since: epochs 1 -> 2 (the schedule now spans them)" in again.stderr
    )


def test_dsreg_train_unknown_model_is_one_line(registry):
    result = CliRunner().invoke(cli, ["train", "stripes", "--model", "text-gru"])
    assert result.exit_code == 1
    assert result.output.strip() == "error: no model 'text-gru' for 'image-classification' (stripes); valid models: image-mlp, image-cnn"


def test_split_choice():
    assert pick_splits(["train", "test"]) == ("train", None, "test")
    assert pick_splits(["train", "validation", "test"]) == ("train", "validation", "test")
    assert pick_splits(["train", "validation"]) == ("train", "validation", "validation")
    assert pick_splits(["train", "holdout", "extra"]) == ("train", None, "extra")
    assert pick_splits(["train"]) == ("train", None, None)


def test_nproc_forwards_every_option_to_the_workers(tmp_path):
    ctx = train_cmd.make_context(
        "train", ["stripes", "--nproc", "2", "--epochs", "2", "--no-preload", "-c", "n=64", "-c", "x=1", "--quiet"]
    )
    args = _forwarded(ctx, tmp_path)
    assert args[0] == "stripes" and "--nproc" not in args
    assert args[args.index("--epochs") + 1] == "2" and "--no-preload" in args and "--quiet" in args and "--json" not in args
    assert [args[i + 1] for i, a in enumerate(args) if a == "--config"] == ["n=64", "x=1"]
    assert args[-2:] == ["--out", str(tmp_path)]
    again = train_cmd.make_context("train", args)
    assert {k: v for k, v in again.params.items() if k not in ("nproc", "out")} == {
        k: v for k, v in ctx.params.items() if k not in ("nproc", "out")
    }


def test_dsreg_train_resume_without_out_continues_the_newest_run(registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = CliRunner().invoke(cli, ["train", "stripes", "--epochs", "1", "-c", "n=64", "-q"])
    assert first.exit_code == 0, first.output
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("stripes-")
    again = CliRunner().invoke(cli, ["train", "stripes", "--epochs", "2", "-c", "n=64", "--resume"])
    assert again.exit_code == 0, again.output
    assert f"resumed from {Path('runs') / run.name / CHECKPOINT} after epoch 1" in again.output
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [run.name]
    assert load_checkpoint(run / CHECKPOINT)["epoch"] == 2


# -- a dataset's own training defaults ----------------------------------------------------------
class TunedStripes(Stripes):
    """Stripes that declare the settings they train best with."""

    name = "tuned-stripes"
    train_defaults = {
        "model": "image-cnn",
        "model_options": {"width": 8},
        "epochs": 2,
        "batch_size": 32,
        "lr": 3e-3,
        "weight_decay": 0.0,
        "schedule": "linear",
    }


@pytest.fixture
def tuned(dsreg_register, dsreg_cache):
    return add_default_models(dsreg_register(*ALL, TunedStripes))


def test_trainer_uses_the_datasets_train_defaults_and_given_arguments_win(tuned):
    trainer = Trainer(None, "tuned-stripes", quiet=True, config={"n": 64})
    assert trainer.model_name == "image-cnn" and trainer.module.features[0].out_channels == 8  # model_options applied
    assert (trainer.epochs, trainer.batch_size, trainer.lr, trainer.schedule) == (2, 32, 3e-3, "linear")
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.0
    mine = Trainer("image-mlp", "tuned-stripes", epochs=1, lr=1e-2, quiet=True, config={"n": 64})
    assert (mine.model_name, mine.epochs, mine.lr, mine.batch_size) == ("image-mlp", 1, 1e-2, 32)
    plain = Trainer(None, "stripes", quiet=True, config={"n": 64})  # no train_defaults: the trainer's fallbacks
    assert (plain.model_name, plain.epochs, plain.batch_size, plain.lr) == ("image-mlp", 3, 128, 1e-3)


def test_dsreg_train_with_no_options_uses_them_and_dsreg_info_shows_them(tuned, tmp_path):
    result = CliRunner().invoke(cli, ["train", "tuned-stripes", "-c", "n=64", "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("tuned-stripes: image-cnn (")
    assert "from the dataset's train_defaults: model image-cnn, model_options {'width': 8}, epochs 2" in result.output
    assert [line.split()[1] for line in result.output.splitlines() if line.startswith("epoch")] == ["1/2", "2/2"]
    settings = json.loads((tmp_path / "a" / METRICS).read_text())["settings"]
    assert (settings["batch_size"], settings["schedule"], settings["model_options"]) == (32, "linear", {"width": 8})
    override = CliRunner().invoke(
        cli, ["train", "tuned-stripes", "-c", "n=64", "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path / "b"), "--json"]
    )
    assert override.exit_code == 0, override.output
    data = json.loads(override.stdout)["settings"]
    assert (data["epochs"], data["batch_size"], data["lr"]) == (1, 16, 3e-3)
    info = CliRunner().invoke(cli, ["info", "tuned-stripes", "--json"])
    assert json.loads(info.stdout)["train_defaults"] == dict(TunedStripes.train_defaults)
    text = CliRunner().invoke(cli, ["info", "tuned-stripes"]).output
    assert 'training:  {"model": "image-cnn", "model_options": {"width": 8}, "epochs": 2' in text


@pytest.mark.parametrize(
    "defaults,message",
    [
        ({"epoch": 3}, "unknown training setting 'epoch'; valid: model, model_options, epochs, batch_size, lr"),
        ({"lr": -1}, "lr -1 is out of range; give a number > 0"),
        ({"schedule": "step"}, "schedule 'step' is out of range; give cosine, linear or constant"),
    ],
)
def test_train_defaults_are_checked_when_the_plugin_registers(defaults, message):
    from dsreg.errors import PluginError

    bad = type("Bad", (Stripes,), {"name": "bad", "train_defaults": defaults})
    with pytest.raises(PluginError, match=message.replace("(", r"\(")) as err:
        bad.validate()
    assert "train_defaults" in str(err.value)


# -- bad options fail before any work, in one line ----------------------------------------------
@pytest.mark.parametrize(
    "args,message",
    [
        (["--lr", "-1"], "error: dsreg train: --lr -1.0 is out of range; give a number > 0"),
        (["--epochs", "0"], "error: dsreg train: --epochs 0 is out of range; give a whole number >= 1"),
        (["--batch-size", "-5"], "error: dsreg train: --batch-size -5 is out of range; give a whole number >= 1"),
        (["--weight-decay", "-0.1"], "error: dsreg train: --weight-decay -0.1 is out of range; give a number >= 0"),
        (["--clip-grad", "0"], "error: dsreg train: --clip-grad 0.0 is out of range; give a number > 0, or None"),
        (["--schedule", "cos"], "error: dsreg train: --schedule 'cos' is out of range; give cosine, linear or constant"),
        (["--workers", "-1"], "error: dsreg train: --workers -1 is out of range; give 0 (load in this process) or more"),
        (["--nproc", "0"], "error: dsreg train: --nproc 0 is out of range; give a whole number >= 1"),
        (["--threads", "0"], "error: dsreg train: --threads 0 is out of range; give a whole number >= 1"),
        (["--seed", "-1"], "error: dsreg train: --seed -1 is out of range; give a whole number >= 0"),
        (["--precision", "fp8"], "error: dsreg train: --precision 'fp8' is out of range; give auto, fp32, bf16 or fp16"),
    ],
)
def test_out_of_range_numbers_are_refused_before_any_work(registry, tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "stripes", "--out", str(out), *args])
    assert (result.exit_code, result.output.strip()) == (1, message)
    assert not out.exists()  # nothing fetched, no run folder made
    assert not dsreg.info("stripes").cached


def test_an_unwritable_run_folder_fails_before_training(registry, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(cli, ["train", "stripes", "--out", str(blocker / "run")])
    assert result.exit_code == 1
    assert (
        result.output.strip()
        == f"error: cannot write the run folder {blocker / 'run'} (Not a directory); choose a writable --out folder (out_dir=)"
    )
    assert not dsreg.info("stripes").cached  # refused before the fetch, so before any epoch
    with pytest.raises(ConfigError, match="cannot write the run folder"):
        Trainer(None, "stripes", out_dir=blocker)


def test_a_run_that_fails_before_writing_leaves_no_empty_folders(registry, tmp_path):
    (tmp_path / "kept").mkdir()
    out = tmp_path / "kept" / "runs" / "r1"
    result = CliRunner().invoke(cli, ["train", "no-such-dataset", "--out", str(out)])
    assert result.exit_code == 1 and "no-such-dataset" in result.output
    assert list((tmp_path / "kept").iterdir()) == []  # the folders the run made are gone, the user's own stays


# -- trainer edges ------------------------------------------------------------------------------
def test_the_epoch_line_shows_the_lr_the_epoch_ended_at(registry):
    lines: list[str] = []
    trainer = Trainer("image-mlp", "stripes", epochs=2, batch_size=128, lr=1e-2, log=lines.append, config={"n": 256})
    trainer.fit()  # 2 steps an epoch, cosine over 4 steps: the last steps run at factor 0.5 and 0.146
    used = [1e-2 * 0.5 * (1 + math.cos(math.pi * step / 4)) for step in (1, 3)]
    assert [row["lr"] for row in trainer.history] == pytest.approx(used)
    assert lines[-1].endswith(f"lr {used[1]:.2e}") and used[1] > 0


def test_following_the_interrupt_hint_literally_continues_the_same_run(registry, tmp_path, monkeypatch):
    import shlex

    from dsreg.train import trainer as train_module

    out = tmp_path / "run"
    real_fit = train_module.Trainer.fit

    def stop_after_two_epochs(self):
        self.epochs, wanted = 2, self.epochs  # train two epochs, then act as if Ctrl-C came
        real_fit(self)
        self.epochs = wanted
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module.Trainer, "fit", stop_after_two_epochs)
    first = CliRunner().invoke(
        cli, ["train", "stripes", "--epochs", "5", "--lr", "0.003", "-c", "n=64", "--batch-size", "32", "--out", str(out)]
    )
    assert first.exit_code == 130, first.output
    hint = first.stderr.strip().splitlines()[-1]
    assert hint.startswith("interrupted; continue with: dsreg train stripes ")
    command = shlex.split(hint.split(": ", 1)[1])
    assert command[:3] == ["dsreg", "train", "stripes"] and command[-1] == "--resume"
    monkeypatch.setattr(train_module.Trainer, "fit", real_fit)
    again = CliRunner().invoke(cli, command[1:])
    assert again.exit_code == 0, again.output
    assert "resumed from" in again.output and "after epoch 2" in again.output
    ckpt = load_checkpoint(out / CHECKPOINT)
    assert ckpt["epoch"] == 5 and ckpt["settings"]["lr"] == 0.003 and ckpt["settings"]["batch_size"] == 32


def test_cpu_threads_are_the_free_cores_unless_the_user_chose(monkeypatch):
    from dsreg.train import pick_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)  # torch's own default: every core
    for load, processes, expected in ((0.0, 1, 4), (2.6, 1, 1), (1.2, 1, 3), (0.0, 2, 2), (9.0, 1, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, 0.0, 0.0))
        assert pick_threads(None, processes) == expected, (load, processes)
    assert pick_threads(3) == 3
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # the user called torch.set_num_threads(2)
    assert pick_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(os, "getloadavg", lambda: (3.0, 0.0, 0.0))
    assert pick_threads() == 4


def test_the_trainer_restores_the_callers_thread_count(registry):
    torch.set_num_threads(1)  # what the one_thread fixture set; the trainer runs with 2, then gives 1 back
    seen: list[int] = []

    def loss(logits, target):
        seen.append(torch.get_num_threads())
        return torch.nn.functional.cross_entropy(logits, target)

    trainer = Trainer("image-mlp", "stripes", epochs=1, threads=2, loss=loss, quiet=True, config={"n": 64})
    trainer.fit()
    trainer.evaluate("stripes:test")
    assert set(seen) == {2} and torch.get_num_threads() == 1 and trainer.settings.threads == 2


# -- the settings object ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "values,message",
    [
        ({"epochs": 0}, "TrainSettings: epochs 0 is out of range; give a whole number >= 1"),
        ({"lr": float("nan")}, "TrainSettings: lr nan is out of range; give a number > 0"),
        ({"schedule": "step"}, "TrainSettings: schedule 'step' is out of range; give cosine, linear or constant"),
        ({"num_workers": -1}, "TrainSettings: num_workers -1 is out of range; give 0 (load in this process) or more"),
        ({"threads": 0}, "TrainSettings: threads 0 is out of range; give a whole number >= 1"),
        ({"precision": "fp8"}, "TrainSettings: precision 'fp8' is out of range; give auto, fp32, bf16 or fp16"),
        ({"preload": 1}, "TrainSettings: preload 1 is out of range; give True, False or 'auto'"),
        ({"resume": None}, "TrainSettings: resume None is out of range; give True, False or a checkpoint path"),
    ],
)
def test_settings_are_checked_when_made(values, message):
    with pytest.raises(ConfigError) as err:
        TrainSettings(**values)
    assert str(err.value) == message


def test_every_setting_is_checked_and_the_object_is_frozen():
    for field in dataclasses.fields(TrainSettings):
        with pytest.raises(ConfigError, match=f"^TrainSettings: {field.name} <object object"):
            TrainSettings(**{field.name: object()})
    settings = TrainSettings(epochs=2, device=torch.device("cpu"), out_dir=Path("runs") / "a", model_options={"width": 8})
    assert (settings.device, settings.out_dir) == ("cpu", str(Path("runs") / "a"))  # plain values, as a checkpoint stores them
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.epochs = 3  # type: ignore[misc]  # the point: it cannot be assigned
    assert settings.replace(epochs=4).epochs == 4 and settings.epochs == 2
    assert settings.to_dict()["model_options"] == {"width": 8} and len(settings.to_dict()) == len(dataclasses.fields(TrainSettings))


def test_keywords_apply_over_the_settings_object(registry):
    settings = TrainSettings(epochs=1, batch_size=64, lr=3e-3, quiet=True)
    trainer = Trainer("image-mlp", "stripes", settings=settings, epochs=2, lr=None, config={"n": 64})  # None: not given
    assert (trainer.epochs, trainer.batch_size, trainer.lr, trainer.settings.quiet) == (2, 64, 3e-3, True)
    assert settings.epochs == 1  # the caller's object is left as it was
    with pytest.raises(TypeError, match=r"Trainer\(\) got an unexpected keyword argument 'epoch' \(did you mean 'epochs'\?\)"):
        Trainer("image-mlp", "stripes", epoch=2)
    with pytest.raises(ConfigError, match=r"^Trainer: epochs 0 is out of range; give a whole number >= 1$"):
        Trainer(None, "stripes", epochs=0)
    with pytest.raises(ConfigError, match="model is an nn.Module and settings.model is 'image-cnn'; give one of them"):
        Trainer(torch.nn.Linear(2, 2), "stripes", settings=TrainSettings(model="image-cnn"))


def test_for_dataset_fills_what_was_not_given_from_the_train_defaults(tuned):
    tuned_ds = dsreg.load("tuned-stripes", split="train", n=64)
    filled = TrainSettings(lr=1e-2).for_dataset(tuned_ds)
    assert (filled.model, filled.model_options, filled.epochs, filled.batch_size, filled.lr, filled.schedule) == (
        "image-cnn",
        {"width": 8},
        2,
        32,
        1e-2,
        "linear",
    )
    assert TrainSettings(model="image-mlp").for_dataset(tuned_ds).model_options == {}  # the dataset's options are its model's
    assert TrainSettings().for_dataset(tuned_ds, own_module=True).model is None
    plain = TrainSettings().for_dataset(dsreg.load("stripes", split="train", n=64))
    assert {key: getattr(plain, key) for key in FALLBACKS} == FALLBACKS


def test_the_settings_a_run_used_rebuild_the_same_run(registry):
    first = Trainer(None, "stripes", settings=TrainSettings(epochs=1, batch_size=32, seed=5, quiet=True), config={"n": 64})
    first.fit()
    used = first.settings
    assert (used.model, used.epochs, used.lr, used.schedule, used.eval_batch_size, used.target) == (
        "image-mlp",
        1,
        1e-3,
        "cosine",
        256,
        "label",
    )
    assert (used.device, used.precision, used.threads, used.num_workers, used.pin_memory, used.preload) == (
        "cpu",
        "fp32",
        1,
        0,
        False,
        False,
    )
    again = Trainer(None, "stripes", settings=used, config={"n": 64})
    again.fit()
    assert state_equal(again.module.state_dict(), first.module.state_dict())


def test_dsreg_train_options_become_one_settings_object(tmp_path):
    ctx = train_cmd.make_context(
        "train",
        [
            "stripes",
            "--epochs",
            "2",
            "--workers",
            "0",
            "--threads",
            "1",
            "--no-preload",
            "--seed",
            "3",
            "-m",
            "image-cnn",
            "-q",
            "--resume",
        ],
    )
    assert settings_from_options(ctx.params, tmp_path) == TrainSettings(
        model="image-cnn", epochs=2, num_workers=0, threads=1, preload=False, seed=3, quiet=True, resume=True, out_dir=str(tmp_path)
    )
    bare = train_cmd.make_context("train", ["stripes"])
    assert settings_from_options(bare.params, tmp_path) == TrainSettings(out_dir=str(tmp_path))  # nothing decided before the data


def test_the_checkpoint_stores_the_settings_and_a_resume_says_what_changed(registry, tmp_path):
    Trainer("image-mlp", "stripes", epochs=1, batch_size=64, quiet=True, out_dir=tmp_path, config={"n": 64}).fit()
    path = tmp_path / CHECKPOINT
    stored = load_checkpoint(path)["settings"]
    assert set(TrainSettings().to_dict()) <= set(stored) and stored["out_dir"] == str(tmp_path) and stored["num_workers"] == 0
    lines: list[str] = []
    Trainer("image-mlp", "stripes", epochs=2, batch_size=64, lr=1e-2, out_dir=tmp_path, resume=True, log=lines.append, config={"n": 64})
    assert lines == [
        f"resumed from {path} after epoch 1; settings changed since: epochs 1 -> 2 (the schedule now spans them), lr 0.001 -> 0.01"
    ]

    # A checkpoint written before TrainSettings held these settings only: it resumes, compared on them.
    old = load_checkpoint(path)
    old["settings"] = {
        key: old["settings"][key]
        for key in (
            "model",
            "model_options",
            "epochs",
            "batch_size",
            "lr",
            "weight_decay",
            "schedule",
            "clip_grad",
            "seed",
            "precision",
            "device",
            "threads",
            "world_size",
            "preload",
            "optimizer",
            "target",
        )
    }
    torch.save(old, path)
    lines.clear()
    resumed = Trainer("image-mlp", "stripes", epochs=2, batch_size=64, out_dir=tmp_path, resume=True, log=lines.append, config={"n": 64})
    assert lines == [f"resumed from {path} after epoch 1; settings changed since: epochs 1 -> 2 (the schedule now spans them)"]
    resumed.fit()
    assert load_checkpoint(path)["epoch"] == 2


def test_docs_list_every_setting_with_its_default():
    import ast
    import re

    page = (TESTS.parent / "docs" / "train.md").read_text()
    table = page[page.index("| field | default |") :]
    rows = re.findall(r"^\| `(\w+)` \| `([^`]+)`", table[: table.index("\n\n")], flags=re.M)
    assert [name for name, _ in rows] == [f.name for f in dataclasses.fields(TrainSettings)]
    assert {name: ast.literal_eval(default) for name, default in rows} == TrainSettings().to_dict()
