"""What a careful but adversarial user tries, through the real commands: every wrong value ends in
one line and exit code 2 before anything is trained or written, and nothing the user asked for is
dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from msareid.cli import main

TINY = ["--config", "configs/tiny.toml"]


def _last_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert lines, "no message"
    return lines[-1]


def test_rows_given_by_row_are_kept_whatever_only_says(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The documented example: --only filters the row sets, a --row row is always planned."""
    argv = ["ablate", *TINY, "--rows", "table4", "--only", "B,MSA", "--row", "MSA-unit:model.isa_space=unit",
            "--seeds", "0", "--out", str(tmp_path / "ab"), "--dry-run", "--json"]
    assert main(argv) == 0
    planned = json.loads(capsys.readouterr().out)["runs"]
    assert [p["row"] for p in planned] == ["B", "MSA", "MSA-unit"]
    for empty in (",", "", " , "):
        argv[argv.index("--only") + 1] = empty
        assert main(argv) == 2
        assert "--only: no row named" in _last_line(capsys.readouterr().err)
    argv[argv.index("--only") + 1] = "B,Nope"
    assert main(argv) == 2
    assert "--only Nope: no such row" in _last_line(capsys.readouterr().err)
    assert not (tmp_path / "ab").exists()


@pytest.mark.parametrize(("config", "setting", "message"), [
    ("configs/regdb.toml", "eval.direction=ir-to-visible",
     "RegDB evaluates in the directions visible-to-thermal, thermal-to-visible; got eval.direction = 'ir-to-visible'"),
    ("configs/tiny.toml", "eval.sampler=official", "eval.sampler = official needs eval.perm"),
])
def test_evaluation_settings_are_refused_before_anything_trains(config: str, setting: str, message: str,
                                                                tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    commands = [["config", "--config", config, "--set", setting],
                ["train", "--config", config, "--set", setting, "--out", str(tmp_path / "run")],
                ["ablate", "--config", config, "--set", setting, "--rows", "table4", "--only", "B", "--seeds", "0",
                 "--out", str(tmp_path / "ab")],
                ["ablate", "--config", config, "--set", setting, "--rows", "table4", "--only", "B", "--seeds", "0",
                 "--out", str(tmp_path / "ab"), "--dry-run"]]
    for argv in commands:
        assert main(argv) == 2, argv
        assert message in _last_line(capsys.readouterr().err), argv
    assert not (tmp_path / "run").exists() and not (tmp_path / "ab").exists()


@pytest.mark.parametrize(("setting", "message"), [
    ("data.random_erasing=1.5", "data.random_erasing: expected 0.0 to 1.0, got 1.5"),
    ("train.weight_decay=-1", "train.weight_decay: expected 0 or more, got -1"),
    ("data.height=1", "data.height: expected 16 to 4096, got 1"),
    ("data.width=3", "data.width: expected 8 to 4096, got 3"),
    ("train.threads=100000", "train.threads: expected 0 to 1024, got 100000"),
    ("data.trial=11", "data.trial: expected 1 to 10, got 11"),
    ("loss.gamma=-0.5", "loss.gamma: expected 0 or more, got -0.5"),
    ("train.lr_decay=0", "train.lr_decay: expected a positive value, got 0"),
    ("train.epochs=", "train.epochs: expected an integer, got ''"),
])
def test_values_out_of_range_are_one_line_and_exit_2(setting: str, message: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    assert main(["config", *TINY, "--set", setting]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("argv", [
    ["synth", "sysu", "--out", "{tmp}/s", "--seed", "-1"],
    ["synth", "sysu", "--out", "{tmp}/s", "--rgb-images", "-3"],
    ["synth", "sysu", "--out", "{tmp}/s", "--ids", "0"],
    ["synth", "regdb", "--out", "{tmp}/s", "--images", "0"],
    ["ablate", *TINY, "--rows", "table4", "--seeds", "0", "--out", "{tmp}/ab", "--launcher", "slurm",
     "--slurm-mem-gb", "nan"],
    ["ablate", *TINY, "--rows", "table4", "--seeds", "0", "--out", "{tmp}/ab", "--launcher", "slurm",
     "--slurm-gpus", "-1"],
])
def test_bad_command_line_numbers_are_refused(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "error: argument" in _last_line(capsys.readouterr().err)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("opset", ["1", "99"])
def test_export_refuses_an_opset_it_cannot_write_a_valid_model_at(opset: str, tiny_checkpoint: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx", "--out", str(out),
                 "--opset", opset]) == 2
    assert f"--opset {opset}: expected 9 to " in _last_line(capsys.readouterr().err)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_an_exported_model_is_checked_before_it_is_written(tiny_checkpoint: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """A file the ONNX checker passes but that computes something else is refused, nothing written."""
    import onnxruntime

    real = onnxruntime.InferenceSession

    class Wrong(real):
        def run(self, names, feeds):  # every output off by one
            return [x + 1 for x in super().run(names, feeds)]

    monkeypatch.setattr(onnxruntime, "InferenceSession", Wrong)
    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx", "--out", str(out)]) == 2
    assert "differs from PyTorch" in _last_line(capsys.readouterr().err) and not out.exists()
    monkeypatch.setattr(onnxruntime, "InferenceSession", real)
    assert main(["export", "--checkpoint", str(tiny_checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    assert out.is_file()


def test_ablate_never_empties_a_run_folder_another_process_writes(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """A run folder without a checkpoint is started anew, but not while a trainer (or a SLURM task,
    or another ablation) holds it: refused, every file left in place."""
    from msareid.locks import exclusive

    folder = tmp_path / "ab" / "runs" / "B" / "seed0"
    folder.mkdir(parents=True)
    (folder / "metrics.jsonl").write_text('{"event": "start"}\n')
    argv = ["ablate", *TINY, "--set", f"data.root={tmp_path / 'data'}", "--rows", "table4", "--only", "B",
            "--seeds", "0", "--out", str(tmp_path / "ab")]
    with exclusive(folder, "msareid train"):
        assert main(argv) == 2
    assert "is being written by msareid train" in _last_line(capsys.readouterr().err)
    assert (folder / "metrics.jsonl").read_text() == '{"event": "start"}\n'


def test_dry_run_makes_every_check_the_real_run_makes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ab"
    base = ["ablate", *TINY, "--rows", "table4", "--only", "B", "--seeds", "0", "--out", str(out), "--dry-run"]
    cases = [
        (["--row", "indoor:eval.mode=indoor"], "row 'indoor' is scored under another protocol than 'B'"),
        (["--baseline", "MSA"], "--baseline 'MSA' is not a row"),
        (["--gpus", "7,8"], "--gpus 7,8: no GPU"),
    ]
    for extra, message in cases:
        assert main(base + extra) == 2, extra
        assert message in _last_line(capsys.readouterr().err), extra
    from msareid.ablation.plan import plan
    from msareid.ablation.rows import ROW_SETS
    from msareid.config import dump_toml
    from msareid.recipes import load_config

    (run,) = plan(load_config("configs/tiny.toml"), [ROW_SETS["table4"][0]], [0], out)
    run.folder.mkdir(parents=True)  # a folder trained with another config
    (run.folder / "config.toml").write_text(dump_toml(run.config).replace("margin = 0.5", "margin = 0.3"))
    assert main(base) == 2
    assert "was trained with another config (differs in loss.margin)" in _last_line(capsys.readouterr().err)
    # settings that cannot change what a run learns, and evaluation settings, are not its identity
    changed = dump_toml(run.config).replace("num_workers = 0", "num_workers = 3").replace("trials = 10", "trials = 3")
    (run.folder / "config.toml").write_text(changed)
    assert main(base) == 0


@pytest.mark.parametrize("figure", ["NaN", "5.0", "-0.1", "true"])
def test_a_tampered_evaluation_never_reaches_a_table(figure: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    """Through ``ablate --collect``: a run whose eval.json holds a figure that is no fraction is not
    a finished run (it would be evaluated again), so it never reaches the tables."""
    from msareid.ablation.plan import plan
    from msareid.ablation.rows import ROW_SETS
    from msareid.config import dump_toml
    from msareid.recipes import load_config

    (run,) = plan(load_config("configs/tiny.toml"), [ROW_SETS["table4"][0]], [0], tmp_path / "ab")
    run.folder.mkdir(parents=True)
    (run.folder / "config.toml").write_text(dump_toml(run.config))
    good = {"rank1": 0.5, "rank10": 0.9, "mAP": 0.4, "mINP": 0.3, "protocol": "sysu/all/single-shot/agw"}
    argv = ["ablate", *TINY, "--rows", "table4", "--only", "B", "--seeds", "0", "--out", str(tmp_path / "ab"),
            "--collect"]
    (run.folder / "eval.json").write_text(json.dumps(good))
    assert main(argv) == 0
    assert json.loads((tmp_path / "ab" / "ablation.json").read_text())["rows"][0]["mean"]["mAP"] == 0.4
    (run.folder / "eval.json").write_text(json.dumps(good).replace('"mAP": 0.4', f'"mAP": {figure}'))
    capsys.readouterr()
    assert main(argv) == 2
    assert "--collect: no finished run" in _last_line(capsys.readouterr().err)


def _every_key() -> list[tuple[str, type]]:
    import typing

    from msareid.config import Config

    return [(f"{section}.{name}", kind) for section, cls in typing.get_type_hints(Config).items()
            for name, kind in typing.get_type_hints(cls).items()]


@pytest.mark.parametrize(("key", "kind"), _every_key(), ids=[k for k, _ in _every_key()])
def test_every_key_refuses_a_wrong_type_in_one_line(key: str, kind: type, capsys: pytest.CaptureFixture) -> None:
    """Every --set key, with a value of the wrong type (and, for numbers, an empty one and -1):
    one line naming the key, exit 2."""
    wrong = {bool: ["maybe", "1"], int: ["", "2.5", "many", "-1"], float: ["", "fast", "-1"], str: ["3", "true"]}
    values = wrong.get(kind, ['"x"', ""])  # lists (train.milestones)
    for value in values:
        assert main(["config", *TINY, "--set", f"{key}={value}"]) == 2, (key, value)
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and key in err, (key, value, err)


def test_extract_refuses_a_folder_without_its_modality_for_a_two_stem_model(synth_sysu: Path, tmp_path: Path,
                                                                           tiny_overrides,
                                                                           capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    argv = ["train", *TINY, "--out", str(run), "--no-progress", "--set", "model.two_stream=true",
            "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=1"]
    for o in tiny_overrides(synth_sysu, tmp_path / "cache"):
        if not o.startswith(("train.epochs", "train.max_steps")):
            argv += ["--set", o]
    assert main(argv) == 0
    folder = sorted((synth_sysu / "cam3").iterdir())[0]  # IR images of one identity
    out = tmp_path / "f.npz"
    capsys.readouterr()
    assert main(["extract", "--checkpoint", str(run / "last.pt"), "--images", str(folder), "--out", str(out)]) == 2
    assert "has a stem for each modality: say which the images of" in _last_line(capsys.readouterr().err)
    assert not out.exists()
    assert main(["extract", "--checkpoint", str(run / "last.pt"), "--images", str(folder), "--out", str(out),
                 "--modality", "ir"]) == 0
    assert out.is_file()


def test_slurm_says_why_a_task_waits_and_wait_stops_when_it_never_can_start(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from msareid.ablation import slurm
    from msareid.ablation.plan import plan
    from msareid.ablation.rows import ROW_SETS
    from msareid.errors import UserError
    from msareid.recipes import load_config

    runs = plan(load_config("configs/tiny.toml"), [ROW_SETS["table4"][0]], [0, 1], tmp_path)
    (tmp_path / "slurm").mkdir()
    (tmp_path / "slurm" / "jobs.json").write_text(json.dumps({"runs": {"runs/B/seed0": {"job_id": "7_0"},
                                                                      "runs/B/seed1": {"job_id": "7_1"}}}))
    states = {"7_0": "PENDING|PartitionConfig"}  # 7_1 left the queue before it wrote a log (scancel)
    lines = slurm.describe_statuses(slurm.statuses(runs, tmp_path, states))
    assert "B seed 0: pending (job 7_0): waiting for PartitionConfig (it never starts" in lines[1]
    assert lines[2].endswith("it ended before it started (cancelled, or refused by SLURM); no log")
    monkeypatch.setattr(slurm, "queue", lambda: states)
    with pytest.raises(UserError, match=r"1 queued run\(s\) can never start: SLURM says PartitionConfig"):
        slurm.wait(runs, tmp_path, echo=lambda line: None, poll_s=0)  # returns instead of waiting forever

    class Sinfo:  # a cluster whose nodes have 2 CPUs
        returncode, stdout = 0, "2\n2\n"

    monkeypatch.setattr(slurm.subprocess, "run", lambda *args, **kwargs: Sinfo())
    with pytest.raises(UserError, match="--slurm-cpus 4: the largest node of the cluster has 2 CPUs"):
        slurm._check_node_size(slurm.SlurmOptions())
    slurm._check_node_size(slurm.SlurmOptions(cpus=2))


SWEEP = [  # (argv, fragment of the one line); {ck}: a trained checkpoint, {tmp}: a scratch folder
    (["evaluate", "--checkpoint", "{tmp}/nope.pt"], "does not exist"),
    (["evaluate", "--checkpoint", "{tmp}/t.txt"], "t.txt was refused"),
    (["evaluate", "--checkpoint", "{ck}", "--trials", "0"], "eval.trials: expected a positive value, got 0"),
    (["evaluate", "--checkpoint", "{ck}", "--direction", "sideways"], "invalid choice: 'sideways'"),
    (["evaluate", "--features", "{tmp}/t.txt", "--protocol", "sysu"], "is not a readable .npz file"),
    (["extract", "--checkpoint", "{ck}", "--images", "{tmp}/none", "--out", "{tmp}/f.npz"],
     "is neither a folder nor a manifest file"),
    (["extract", "--checkpoint", "{ck}", "--images", "{tmp}", "--out", "{tmp}/f.npz", "--batch-size", "0"],
     "expected a positive integer"),
    (["search", "--checkpoint", "{ck}", "--gallery", "{tmp}/none.npz", "--query", "{tmp}/t.txt"],
     "feature file"),
    (["search", "--checkpoint", "{ck}", "--gallery", "{tmp}/t.txt", "--query", "{tmp}/t.txt", "--topk", "0"],
     "expected a positive integer"),
    (["export", "--checkpoint", "{tmp}/t.txt", "--format", "onnx", "--out", "{tmp}/m.onnx"], "t.txt was refused"),
    (["export", "--checkpoint", "{ck}", "--format", "onnx", "--out", "{tmp}/m.onnx", "--opset", "x"],
     "invalid int value"),
    (["synth", "sysu", "--out", "{tmp}", "--ids", "8"], "is not empty"),
    (["synth", "sysu", "--out", "{tmp}/s", "--ids", "3"], "is too few"),
    (["synth", "mars", "--out", "{tmp}/s"], "invalid choice: 'mars'"),
    (["train", "--resume", "{tmp}/none"], "does not exist"),
    (["train", "--config", "configs/tiny.toml", "--out", "{tmp}/r", "--set", "data.root={tmp}/none"],
     "does not exist or is not a folder"),
    (["train", "--config", "configs/tiny.toml"], "give either --out RUN_DIR"),
    (["ablate", *TINY, "--rows", "table4", "--seeds", "a,b", "--out", "{tmp}/ab"], "expected comma-separated"),
    (["ablate", *TINY, "--rows", "table4", "--seeds", "0", "--epochs", "0", "--out", "{tmp}/ab"],
     "expected a positive integer"),
    (["ablate", *TINY, "--rows", "table9", "--seeds", "0", "--out", "{tmp}/ab"], "--rows 'table9'"),
    (["ablate", *TINY, "--row", "x:model.r2i=maybe", "--seeds", "0", "--out", "{tmp}/ab"],
     "row 'x' (--row or --rows): config key model.r2i: expected true or false"),
    (["ablate", *TINY, "--rows", "table4", "--seeds", "0", "--out", "{tmp}/ab", "--jobs", "0"],
     "expected a positive integer"),
    (["profile", *TINY, "--num-classes", "0"], "expected a positive integer"),
    (["report", "{tmp}/none"], "does not exist"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
]


@pytest.mark.parametrize(("argv", "fragment"), SWEEP, ids=[" ".join(a[:2]) + f" #{i}" for i, (a, _) in
                                                            enumerate(SWEEP)])
def test_every_command_answers_bad_input_in_one_line(argv: list[str], fragment: str, tiny_checkpoint: Path,
                                                     tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The sweep of docs/robustness.md: each command with a missing file, a file of another kind, a
    value out of range or of the wrong type ends in one line and exit code 2 (argparse's errors too)."""
    (tmp_path / "t.txt").write_text("not what was expected\n")
    argv = [a.replace("{tmp}", str(tmp_path)).replace("{ck}", str(tiny_checkpoint)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's errors
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    assert len(err.strip().splitlines()) == 1 and fragment in err, (argv, err)
