"""msareid ablate: rows, seed statistics, the JSON interface, resume after a kill, threads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from msareid.ablation.rows import ROW_SETS, parse_row, resolve_rows, rows_from_toml
from msareid.ablation.runner import GpuSlots, visible_gpus
from msareid.ablation.stats import paired_interval, summarise
from msareid.cli import main
from msareid.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_table_rows_carry_the_papers_names_and_settings() -> None:
    names = [r.name for r in ROW_SETS["table4"]]
    assert names == ["B", "B+ISA(R2I)", "B+ISA(I2R)", "B+ISA", "B+ISA+SSC(R2I)", "B+ISA+SSC(I2R)", "MSA"]
    rows = {r.name: r.settings for r in ROW_SETS["table4"]}
    assert rows["B"]["model.r2i"] is False and rows["B"]["model.i2r"] is False
    assert rows["B+ISA(I2R)"] == {"model.r2i": False, "model.i2r": True, "loss.source_loss": "none",
                                  "loss.target_loss": "none"}
    assert rows["MSA"] == {"model.r2i": True, "model.i2r": True, "loss.source_loss": "ssl_plus",
                           "loss.target_loss": "ssl"}
    t5 = {r.name: (r.settings["loss.source_loss"], r.settings["loss.target_loss"]) for r in ROW_SETS["table5"]}
    assert t5["SSL/SSL"] == ("ssl", "ssl") and t5["SSL+/x"] == ("ssl_plus", "none") and t5["x/SSL"] == ("none", "ssl")


def test_custom_rows_from_flags_and_toml(tmp_path: Path) -> None:
    row = parse_row("late:train.milestones=[20, 30],model.isa_init=\"default\",data.erasing_stage=after_isa")
    assert row.name == "late" and row.settings == {"train.milestones": [20, 30], "model.isa_init": "default",
                                                   "data.erasing_stage": "after_isa"}
    assert parse_row("base:").settings == {}
    with pytest.raises(UserError, match="NAME:section.key=value"):
        parse_row("no-colon")
    f = tmp_path / "rows.toml"
    f.write_text('["B+ISA"]\nmodel.r2i = true\nloss.source_loss = "none"\n\n[other]\n[other.model]\ni2r = false\n')
    rows = rows_from_toml(f)
    assert [(r.name, r.settings) for r in rows] == [("B+ISA", {"model.r2i": True, "loss.source_loss": "none"}),
                                                   ("other", {"model.i2r": False})]
    assert [r.name for r in resolve_rows(["table4"], ["x:model.r2i=false"], ["MSA", "x"])] == ["MSA", "x"]
    with pytest.raises(UserError, match="no such row"):
        resolve_rows(["table4"], [], ["C"])
    with pytest.raises(UserError, match="given twice"):
        resolve_rows(["table4"], ["B:"], None)


def test_local_runs_spread_over_the_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slots = GpuSlots(["0", "1"])
    with slots.take() as a, slots.take() as b, slots.take() as c, slots.take() as d, slots.take() as e:
        assert [a, b, c, d, e] == ["0", "1", "0", "1", "0"]  # one each, then several a GPU, evenly
    with slots.take() as a:
        with slots.take() as b:
            pass
        with slots.take() as c:  # the one freed
            assert (a, b, c) == ("0", "1", "1")
    with GpuSlots([]).take() as none:
        assert none is None
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert visible_gpus("2, 3") == ["2", "3"]
    with pytest.raises(UserError, match="--gpus 7,8: no GPU 7, 8 here; the visible GPUs are 0, 1, 2, 3"):
        visible_gpus("7,8")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)  # a machine without GPUs: runs would use the CPU
    with pytest.raises(UserError, match="--gpus 0: no GPU is visible on this machine; leave --gpus out"):
        visible_gpus("0")


def test_paired_interval_is_the_student_t_interval() -> None:
    diffs = [0.02, 0.05, -0.01, 0.03]
    d = paired_interval(diffs)
    half = sps.t.ppf(0.975, 3) * np.std(diffs, ddof=1) / 2
    assert d["mean"] == pytest.approx(np.mean(diffs))
    assert (d["low"], d["high"]) == pytest.approx((np.mean(diffs) - half, np.mean(diffs) + half))
    assert paired_interval([0.1])["low"] is None


def test_differences_pair_runs_by_seed() -> None:
    def run(seed: int, m: float) -> dict:
        return {"seed": seed, "rank1": m, "rank10": m, "mAP": m, "mINP": m}

    rows = summarise([{"name": "B", "runs": [run(0, 0.1), run(1, 0.5), run(2, 0.3)]},
                      {"name": "X", "runs": [run(2, 0.35), run(0, 0.2)]}], "B")  # seed 1 missing in X
    x = rows[1]
    assert x["diff_vs_baseline"]["mAP"]["mean"] == pytest.approx(0.075)  # (0.1 + 0.05) / 2, seed by seed
    assert x["mean"]["mAP"] == pytest.approx(0.275) and x["std"]["mAP"] == pytest.approx(np.std([0.35, 0.2], ddof=1))
    assert rows[0]["diff_vs_baseline"]["rank1"]["mean"] == 0


def _ablate_cmd(root: Path, cache: Path, out: Path, jobs: int = 2, gpus: str | None = None) -> list[str]:
    sets = [f"data.root={root}", f"data.cache_dir={cache}", "data.height=32", "data.width=16", "data.pad=2",
            "train.epochs=2", "train.max_steps_per_epoch=2", "train.warmup_epochs=1", "sampler.num_ids=3",
            "sampler.num_instances=2", "eval.trials=2"]
    cmd = ["ablate", "--config", str(REPO / "configs" / "tiny.toml"), "--rows", "table4", "--only", "B,MSA,MSA-unit",
           "--row", "MSA-unit:model.isa_space=unit", "--seeds", "0,1", "--jobs", str(jobs), "--out", str(out),
           *(["--gpus", gpus] if gpus else [])]
    for s in sets:
        cmd += ["--set", s]
    return cmd


@pytest.mark.slow
def test_ablate_writes_the_interface_and_each_run_equals_evaluate(synth_sysu: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # two GPUs to share: the runs still train on the CPU
    out = tmp_path / "ab"
    assert main(_ablate_cmd(synth_sysu, tmp_path / "cache", out, gpus="0,1")) == 0
    log = capsys.readouterr().out
    assert "[6/6]" in log and "left" in log
    result = json.loads((out / "ablation.json").read_text())
    assert result["baseline"] == "B" and result["protocol"] == "sysu/all/single-shot/agw"
    assert [r["name"] for r in result["rows"]] == ["B", "MSA", "MSA-unit"]
    for row in result["rows"]:
        assert set(row) >= {"name", "settings", "runs", "mean", "std", "diff_vs_baseline"}
        assert [r["seed"] for r in row["runs"]] == [0, 1]
        for k in ("rank1", "rank10", "mAP", "mINP"):
            values = [r[k] for r in row["runs"]]
            assert row["mean"][k] == pytest.approx(np.mean(values))
            assert row["std"][k] == pytest.approx(np.std(values, ddof=1))
            assert all(0.0 <= v <= 1.0 for v in values)
        for k in ("mAP", "rank1"):
            assert set(row["diff_vs_baseline"][k]) >= {"mean", "low", "high"}
    msa = result["rows"][1]
    run = msa["runs"][1]
    assert run["run_dir"] == "runs/MSA/seed1"  # relative to the ablation folder
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / run["run_dir"] / "last.pt"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert {k: again[k] for k in ("rank1", "rank10", "mAP", "mINP")} == {k: run[k] for k in
                                                                           ("rank1", "rank10", "mAP", "mINP")}
    diffs = [m["mAP"] - b["mAP"] for m, b in zip(msa["runs"], result["rows"][0]["runs"])]
    assert msa["diff_vs_baseline"]["mAP"]["mean"] == pytest.approx(np.mean(diffs))
    md = (out / "ablation.md").read_text()
    assert "| MSA | ✓ | ✓ | SSL+ | SSL | 2 |" in md and "95%" in md
    # the HTML report of the ablation: the table, the per-seed plot, pictures of two runs
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "MSA-unit" in page and "95% Student-t interval" in page and "ablation.png" in page
    assert "MSA-unit/seed0" in page and (out / "report_files" / "ablation.png").stat().st_size > 0
    # each run's config is the base config with its row's settings and its seed
    cfg = (out / "runs" / "MSA-unit" / "seed1" / "config.toml").read_text()
    assert 'isa_space = "unit"' in cfg and "seed = 1" in cfg
    # threads: 2 jobs on this machine's cores share them; --gpus 0,1: each run saw one GPU, both used
    start = json.loads((out / "runs" / "B" / "seed0" / "metrics.jsonl").read_text().splitlines()[0])
    assert start["threads"] == max(1, len(os.sched_getaffinity(0)) // 2)
    seen = [json.loads((folder / "metrics.jsonl").read_text().splitlines()[0])["cuda_visible_devices"]
            for folder in (out / "runs").glob("*/seed*")]
    assert len(seen) == 6 and set(seen) == {"0", "1"}
    # a second call finds every run done and trains nothing
    stamp = (out / "runs" / "B" / "seed0" / "last.pt").stat().st_mtime_ns
    assert main(_ablate_cmd(synth_sysu, tmp_path / "cache", out)) == 0
    assert "6 done already" in capsys.readouterr().out
    assert (out / "runs" / "B" / "seed0" / "last.pt").stat().st_mtime_ns == stamp
    # what cannot change a run's weights is not its identity: --collect with other workers trains
    # nothing; another protocol (eval.trials) evaluates B's runs again, keeping their weights
    assert main(_ablate_cmd(synth_sysu, tmp_path / "cache", out) + ["--set", "data.num_workers=1", "--collect"]) == 0
    other_protocol = _ablate_cmd(synth_sysu, tmp_path / "cache", out) + ["--set", "eval.trials=3"]
    other_protocol[other_protocol.index("--only") + 1] = "B"
    del other_protocol[other_protocol.index("--row") : other_protocol.index("--row") + 2]
    assert main(other_protocol) == 0
    assert "0 done already" in capsys.readouterr().out
    assert json.loads((out / "runs" / "B" / "seed0" / "eval.json").read_text())["trials"] == 3
    assert (out / "runs" / "B" / "seed0" / "last.pt").stat().st_mtime_ns == stamp
    # a larger train.epochs trains the same runs further (resumed, not restarted) and evaluates again
    longer = _ablate_cmd(synth_sysu, tmp_path / "cache", out)
    longer[longer.index("train.epochs=2")] = "train.epochs=3"
    longer[longer.index("--only") + 1] = "B"
    del longer[longer.index("--row") : longer.index("--row") + 2]  # B alone (a --row row is always kept)
    first_lines = len((out / "runs" / "B" / "seed0" / "metrics.jsonl").read_text().splitlines())
    # a failed attempt to grow it (its folder held by another writer) loses nothing: eval.json stays
    from msareid.locks import exclusive

    results_before = (out / "runs" / "B" / "seed0" / "eval.json").read_text()
    with exclusive(out / "runs" / "B" / "seed0", "msareid train"):
        assert main(longer) == 2
    assert "is being written by msareid train" in capsys.readouterr().err
    assert (out / "runs" / "B" / "seed0" / "eval.json").read_text() == results_before
    assert main(longer) == 0
    grown = json.loads((out / "ablation.json").read_text())["rows"][0]["runs"][0]
    lines = [json.loads(x) for x in (out / "runs" / "B" / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) > first_lines and [x["event"] for x in lines].count("resume") == 1
    assert lines[-1]["epoch"] == 3 and 'epochs = 3' in (out / "runs" / "B" / "seed0" / "config.toml").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(out / grown["run_dir"] / "last.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["mAP"] == grown["mAP"]
    # the same folder with another config is refused before anything runs
    other = longer + ["--set", "loss.margin=0.3"]
    assert main(other) == 2
    assert "trained with another config (differs in loss.margin)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_killed_ablation_continues_where_it_stopped(synth_sysu: Path, tmp_path: Path) -> None:
    out = tmp_path / "ab"
    cmd = [sys.executable, "-m", "msareid", *_ablate_cmd(synth_sysu, tmp_path / "cache", out, jobs=1)]
    cmd[cmd.index("train.epochs=2")] = "train.epochs=3"
    cmd[cmd.index("--only") + 1] = "B"  # two runs: the first finished, the second killed or not yet started
    del cmd[cmd.index("--row") : cmd.index("--row") + 2]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    first = out / "runs" / "B" / "seed0" / "eval.json"
    deadline = time.time() + 120
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    done_before = first.read_text()
    time.sleep(0.5)  # the child training (killed with its parent) has stopped writing
    finished = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    assert "1 done already" in finished.stdout
    assert first.read_text() == done_before  # the finished run was not trained again
    result = json.loads((out / "ablation.json").read_text())
    assert all(len(r["runs"]) == 2 for r in result["rows"])
    for row in result["rows"]:
        for run in row["runs"]:
            lines = [json.loads(x) for x in (out / run["run_dir"] / "metrics.jsonl").read_text().splitlines()]
            assert lines[-1]["event"] == "end" and lines[-1]["epoch"] == 3


def test_bad_ablation_arguments_exit_2(synth_sysu: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["ablate", "--config", str(REPO / "configs" / "tiny.toml"), "--out", str(tmp_path / "x")]
    refusals = [
        (["--rows", "table9", "--seeds", "0"], "table4, table5"),
        (["--rows", "table4", "--seeds", "0,a"], "comma-separated integers"),
        (["--row", "x:model.r2i=maybe", "--seeds", "0"], "row 'x' (--row or --rows): config key model.r2i"),
        (["--rows", "table4", "--seeds", "0", "--baseline", "C"], "--baseline 'C' is not a row"),
        (["--rows", "table4", "--seeds", "0,-1"], "--seeds '0,-1': a seed is 0 to 4294967295, got -1"),
        (["--row", "x:train.seed=3", "--seeds", "0"], "row 'x' sets train.seed"),
        (["--rows", "table4", "--seeds", "0", "--set", "eval.lambda_value=1.5"],
         "eval.lambda_value: expected 0.0 to 1.0"),
    ]
    for args, message in refusals:
        assert main(base + args) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "ablation.json").write_text('{"rows": 3}')
    assert main(["report", str(tmp_path / "y")]) == 2
    assert "is not what msareid ablate writes" in capsys.readouterr().err


@pytest.mark.slow
def test_a_failed_run_stops_the_ablation_unless_keep_going(synth_sysu: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "ab"
    cmd = _ablate_cmd(synth_sysu, tmp_path / "cache", out, jobs=1)
    del cmd[cmd.index("--rows") : cmd.index("--rows") + 2]
    del cmd[cmd.index("--only") : cmd.index("--only") + 2]
    cmd[cmd.index("--seeds") + 1] = "0"
    cmd[cmd.index("--row") + 1] = f"bad:model.pretrained={tmp_path / 'nowhere.pth'}"  # fails when training starts
    cmd += ["--row", "good:", "--baseline", "good"]
    assert main(cmd) == 2
    err = capsys.readouterr().err
    assert "ablate.log" in err and str(out / "runs" / "bad" / "seed0") in err
    assert not (out / "runs" / "good").exists()  # the next run never started
    assert main(cmd + ["--keep-going"]) == 2
    captured = capsys.readouterr()
    assert "1 run(s) failed" in captured.err and "going on" in captured.out
    result = json.loads((out / "ablation.json").read_text())
    good = out / "runs" / "good" / "seed0"
    assert [r["name"] for r in result["rows"]] == ["good"] and (good / "eval.json").is_file()
    # an eval.json of another shape is not a finished run: it is evaluated again
    (good / "eval.json").write_text("[1, 2]")
    good_only = cmd[: cmd.index("--row")] + cmd[cmd.index("--row") + 2 :]  # without the bad row
    assert main(good_only) == 0
    assert json.loads((good / "eval.json").read_text())["mAP"] == result["rows"][0]["runs"][0]["mAP"]


@pytest.mark.slow
def test_table3_runs_end_to_end_with_the_best_epoch_beside_the_last(synth_sysu: Path, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "t3"
    cmd = _ablate_cmd(synth_sysu, tmp_path / "cache", out)
    cmd[cmd.index("--only") + 1] = "B,AGW,MSA(AGW)"
    cmd[cmd.index("--row") : cmd.index("--row") + 2] = ["--rows", "table3", "--epochs", "2", "--set", "eval.every=1"]
    cmd[cmd.index("--seeds") + 1] = "0"
    assert main(cmd) == 0
    result = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["B", "AGW", "MSA(AGW)"] and result["epochs"] == 2
    for row in result["rows"]:
        for run in row["runs"]:
            evals = [json.loads(x) for x in (out / run["run_dir"] / "metrics.jsonl").read_text().splitlines()
                     if '"event": "eval"' in x]
            assert [e["epoch"] for e in evals] == [1, 2]
            top = max(evals, key=lambda e: e["rank1"])
            assert run["best"] == {"epoch": top["epoch"], **{k: top[k] for k in ("rank1", "rank10", "mAP", "mINP")}}
            # the headline stays the last epoch's: the same figures as the epoch-2 evaluation
            assert run["rank1"] == pytest.approx(evals[-1]["rank1"]) and run["mAP"] == pytest.approx(evals[-1]["mAP"])
        assert row["best_mean"]["rank1"] == pytest.approx(np.mean([r["best"]["rank1"] for r in row["runs"]]))
        assert row["best_mean"]["rank1"] >= row["mean"]["rank1"] - 1e-12  # selection on the test set is optimistic
    agw = result["rows"][1]
    assert agw["resolved"]["model.two_stream"] and agw["resolved"]["loss.triplet"] == "wrt"
    cfg = (out / agw["runs"][0]["run_dir"] / "config.toml").read_text()
    assert 'optimizer = "sgd"' in cfg and "epochs = 2" in cfg and 'non_local = "one"' in cfg
    md = (out / "ablation.md").read_text()
    assert "| AGW | 2-stem+NL+GeM, WRT, SGD |" in md and "best-epoch Rank-1 (test-selected)" in md
    assert "optimistic" in md
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "best-epoch mAP (test-selected)" in page and "evaluations.png" in page
    assert (out / "report_files" / "evaluations.png").stat().st_size > 0


@pytest.mark.slow
def test_an_ablation_folder_keeps_its_trained_weights_and_owner(synth_sysu: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from msareid.locks import exclusive
    from msareid.training.checkpoint import load_checkpoint

    out = tmp_path / "ab"
    cmd = _ablate_cmd(synth_sysu, tmp_path / "cache", out, jobs=2)
    cmd[cmd.index("--only") + 1] = "B"
    cmd[cmd.index("--seeds") + 1] = "0,1"
    cmd[cmd.index("--row") : cmd.index("--row") + 2] = []
    assert main(cmd) == 0
    capsys.readouterr()
    # a second writer is refused with the folder and its holder; --collect reads beside it
    with exclusive(out, "another msareid ablate"):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert str(out) in err and "another msareid ablate (pid" in err and len(err.strip().splitlines()) == 1
        assert main(cmd + ["--collect"]) == 0
    capsys.readouterr()
    seed0, seed1 = (out / "runs" / "B" / f"seed{s}" for s in (0, 1))
    # an unreadable last.pt: the run continues from its newest readable epoch checkpoint
    epoch2 = (seed0 / "epoch_002.pt").read_bytes()
    with open(seed0 / "last.pt", "r+b") as damaged:  # truncated in place: epoch_002.pt is a file of its own
        damaged.truncate(100)
    assert (seed0 / "epoch_002.pt").read_bytes() == epoch2
    (seed0 / "eval.json").unlink()
    # no readable checkpoint at all: the folder is moved aside, not deleted
    for f in seed1.glob("*.pt"):
        f.write_bytes(b"broken")
    (seed1 / "eval.json").unlink()
    # a missing config.toml is restored from the (readable) checkpoint
    saved = (seed0 / "config.toml").read_text()
    (seed0 / "config.toml").unlink()
    assert main(cmd) == 0
    captured = capsys.readouterr()
    assert f"continuing {seed0} from epoch_002.pt" in captured.err, captured.err
    assert (seed0 / "epoch_002.pt").read_bytes() == epoch2 and load_checkpoint(seed0 / "last.pt")["epoch"] == 2
    assert list(seed0.glob("last.unreadable-*.pt"))  # the unreadable file is kept too
    aside = list((out / "runs" / "B").glob("seed1.unreadable-*"))
    assert len(aside) == 1 and (aside[0] / "last.pt").read_bytes() == b"broken"
    assert load_checkpoint(seed1 / "last.pt")["epoch"] == 2 and f"moved it to {aside[0]}" in captured.err
    assert (seed0 / "config.toml").read_text() == saved
    # a copied folder reports its own runs, from any directory, with the original gone
    copy = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(out)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["report", "copy", "--out", "copy/report.html"]) == 0
    result = json.loads((copy / "ablation.json").read_text())
    assert [r["run_dir"] for r in result["rows"][0]["runs"]] == ["runs/B/seed0", "runs/B/seed1"]
    assert (copy / "report.html").is_file() and not out.exists()


def test_rows_of_different_protocols_are_not_compared(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from msareid.ablation.stats import markdown

    base = ["ablate", "--config", str(REPO / "configs" / "tiny.toml"), "--out", str(tmp_path / "x"), "--seeds", "0",
            "--rows", "table4", "--only", "B,indoor", "--row", "indoor:eval.mode=indoor"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "row 'indoor' is scored under another protocol than 'B' (eval.mode = 'indoor', not 'all')" in err
    assert "--mixed-protocols" in err and not (tmp_path / "x").exists()
    rows = [{"name": "B", "runs": [{"seed": s, "protocol": "sysu/all", "rank1": 0.1, "rank10": 0.5, "mAP": 0.2,
                                    "mINP": 0.1} for s in (0, 1)]},
            {"name": "indoor", "runs": [{"seed": s, "protocol": "sysu/indoor", "rank1": 0.3, "rank10": 0.6,
                                         "mAP": 0.4, "mINP": 0.2} for s in (0, 1)]}]
    table = summarise(rows, "B")
    assert table[1]["diff_vs_baseline"] == {}  # no paired difference across protocols
    result = {"rows": [{**r, "settings": {}, "protocol": r["runs"][0]["protocol"]} for r in table], "baseline": "B",
              "protocol": "sysu/all", "mixed_protocols": True}
    md = markdown(result)
    assert "| indoor | sysu/indoor |" in md and "Protocols differ between rows" in md


@pytest.mark.slow
def test_a_report_of_runs_under_two_protocols_names_each(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import shutil

    runs = []
    for parent, protocol in (("a", "sysu/all/single-shot/agw"), ("b", "sysu/indoor/single-shot/agw")):
        run = tmp_path / parent / "run"
        shutil.copytree(tiny_checkpoint.parent, run)
        assert main(["evaluate", "--checkpoint", str(run / "last.pt"), "--trials", "1", "--out",
                     str(run / "eval.json"), "--json", "--mode", protocol.split("/")[1]]) == 0
        runs.append(str(run))
    assert main(["report", *runs, "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert "differs between runs" in page and "(sysu/indoor/single-shot/agw)" in page
    assert ">a/run<" in page and ">b/run<" in page  # unique labels for two folders named run
