"""Training: schedule, exact resume after SIGKILL, DDP on CPU (gloo), non-finite stop, checkpoints."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from msareid.cli import main
from msareid.engine import train
from msareid.recipes import load_config
from msareid.training.checkpoint import load_checkpoint, prune
from msareid.training.schedule import lr_at


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_schedule_warms_up_then_decays() -> None:
    lrs = [lr_at(e, 3.5e-4, 10, (20, 50), 0.1) for e in range(60)]
    assert lrs[0] == pytest.approx(3.5e-5) and lrs[9] == pytest.approx(3.5e-4)
    assert lrs[19] == pytest.approx(3.5e-4) and lrs[20] == pytest.approx(3.5e-5) and lrs[50] == pytest.approx(3.5e-6)


def test_prune_keeps_the_last_and_every_kth(tmp_path: Path) -> None:
    for e in range(1, 8):
        (tmp_path / f"epoch_{e:03d}.pt").write_text("x")
    prune(tmp_path, keep_last=2, keep_every=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_003.pt", "epoch_006.pt", "epoch_007.pt"]
    # a process deletes only what it wrote: epochs 8 and 9 are new, epochs 3 and 6 an earlier process's
    for e in (8, 9):
        (tmp_path / f"epoch_{e:03d}.pt").write_text("x")
    prune(tmp_path, keep_last=1, keep_every=0, only={tmp_path / "epoch_008.pt", tmp_path / "epoch_009.pt"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_003.pt", "epoch_006.pt", "epoch_007.pt",
                                                          "epoch_009.pt"]


def _train_and_kill_at(out: Path, overrides: list[str], line: str) -> None:
    """``msareid train`` of configs/tiny.toml into ``out`` in a child process, killed with SIGKILL as
    soon as ``line`` appears in its metrics.jsonl (asserting it was killed, not finished)."""
    cmd = [sys.executable, "-m", "msareid", "train", "--config", "configs/tiny.toml", "--out", str(out),
           "--no-progress"]
    for o in overrides:
        cmd += ["--set", o]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log, deadline = out / "metrics.jsonl", time.time() + 120
    while proc.poll() is None and time.time() < deadline and not (log.exists() and line in log.read_text()):
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL  # it was killed mid-run, not finished


@pytest.mark.parametrize("variant", ["msa", "ddag"])
def test_kill_and_resume_gives_identical_weights(synth_sysu: Path, tmp_path: Path, tiny_config, tiny_overrides,
                                                 variant: str) -> None:
    extra = {"data.height": 96, "data.width": 48, "train.epochs": 3, "train.max_steps_per_epoch": 8,
             "train.checkpoint_every": 3, **(VARIANTS["ddag"] if variant == "ddag" else {})}
    reference = train(tiny_config(synth_sysu, tmp_path / "cache", **extra), tmp_path / "whole", progress=False)
    killed = tmp_path / "killed"
    mid_epoch = '"event": "checkpoint", "epoch": 1, "step": 3'  # 3 steps into the second epoch
    _train_and_kill_at(killed, tiny_overrides(synth_sysu, tmp_path / "cache", **extra), mid_epoch)
    stopped_at = load_checkpoint(killed / "last.pt")
    assert stopped_at["epoch"] == 1 and stopped_at["step"] > 0  # within an epoch
    # DDAG's graph-loss weight of the second epoch (from the first epoch's losses) is in the checkpoint
    assert (stopped_at.get("graph_weight", 0.0) > 0) == (variant == "ddag")
    assert main(["train", "--resume", str(killed), "--no-progress"]) == 0
    resumed = load_checkpoint(killed / "last.pt")
    assert resumed["epoch"] == 3
    for name, value in reference.model.state_dict().items():
        assert torch.equal(value, resumed["model"][name]), name
    lines = [json.loads(x) for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines if x["event"] in ("start", "resume")] == ["start", "resume"]
    # each epoch's mean losses cover all its steps, also the epoch that was resumed mid-way
    whole = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]

    def epoch_means(events: list[dict]) -> dict[int, dict]:
        return {x["epoch"]: {k: v for k, v in x.items() if k not in ("time", "event")}
                for x in events if x["event"] == "epoch"}

    assert epoch_means(lines) == epoch_means(whole)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The baseline, MSA, and AGW's network (two stems, non-local blocks, GeM, WRT) with MSA, all with SGD
# at a small learning rate: training this tiny network from scratch amplifies float rounding (one
# process on 1 and on 2 threads differs by 3e-3 in the loss after 16 steps at lr 1e-3, by 4e-5 at
# lr 1e-4; measured), and a comparison is only as tight as the noise allows. The gradient (which
# Adam consumes alike) is what the ranks must agree on; a gradient off by any factor would move the
# weights by about lr x |g| x steps = 1e-4 x 0.3 x 6, twenty times the tolerance.
VARIANTS = {
    "baseline": {"model.r2i": "false", "model.i2r": "false"},
    "msa": {},
    "agw_msa": {"model.two_stream": "true", "model.non_local": "half", "model.pooling": "gem", "loss.triplet": "wrt",
                "train.base_lr_factor": 0.1},
    # DDAG: the part aggregation's BNNeck, and the graph attention (with its dropout) over the global batch
    "ddag": {"model.r2i": "false", "model.i2r": "false", "model.two_stream": "true", "model.parts": 3,
             "model.graph_attention": "true", "train.base_lr_factor": 0.1},
}
SGD = {"train.optimizer": "sgd", "train.lr": 1e-4}


def _ddp_worker(rank: int, world: int, ports: list[int], runs: dict[str, list[str]], tmp: str) -> None:
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    for port, (name, overrides) in zip(ports, runs.items()):
        os.environ["MASTER_PORT"] = str(port)
        train(load_config("configs/tiny.toml", overrides), Path(tmp) / f"{name}_ranks" / f"rank{rank}", progress=False)


def _step_losses(run: Path) -> list[dict[str, float]]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [x["losses"] for x in lines if x["event"] == "step"]


def test_two_ranks_train_the_same_model_as_one_process(synth_sysu: Path, tmp_path: Path, tiny_overrides) -> None:
    """The configured batch is the global batch: 2 gloo ranks (2 identities each, synchronised
    BatchNorm, triplet mining over both ranks' features) give the losses of every step and the
    weights of one process training 4 identities a batch, up to float rounding."""
    runs = {name: tiny_overrides(synth_sysu, tmp_path / "cache", **{"sampler.num_ids": 4, **SGD, **extra})
            for name, extra in VARIANTS.items()}
    for name, overrides in runs.items():  # one process (no process group), one thread
        torch.set_num_threads(1)
        train(load_config("configs/tiny.toml", overrides), tmp_path / f"{name}_one", progress=False)
    torch.multiprocessing.spawn(_ddp_worker, args=(2, [_free_port() for _ in runs], runs, str(tmp_path)), nprocs=2)
    for name in runs:
        one, ranks = tmp_path / f"{name}_one", tmp_path / f"{name}_ranks" / "rank0"
        assert not (tmp_path / f"{name}_ranks" / "rank1").exists()  # only rank 0 writes
        a, b = _step_losses(one), _step_losses(ranks)
        assert len(a) == len(b) == 6 and a[0].keys() == b[0].keys()
        for step_a, step_b in zip(a, b):
            for term, value in step_a.items():
                assert step_b[term] == pytest.approx(value, rel=1e-5, abs=1e-6), (name, term)
        w1, w2 = load_checkpoint(one / "last.pt")["model"], load_checkpoint(ranks / "last.pt")["model"]
        assert w1.keys() == w2.keys()
        for key, value in w1.items():  # parameters and BatchNorm running statistics alike
            torch.testing.assert_close(w2[key], value, rtol=1e-4, atol=1e-5, msg=f"{name}: {key}")
        start = json.loads((ranks / "metrics.jsonl").read_text().splitlines()[0])
        assert start["world_size"] == 2


def _two_nodes(argv: list[str], port: int, logs: Path) -> list[subprocess.Popen]:
    """``torchrun --nnodes 2 --nproc-per-node 1`` twice, c10d rendezvous on 127.0.0.1: two processes
    standing for two machines."""
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "MSAREID_THREADS": "1", "OMP_NUM_THREADS": "1"}
    cmd = [str(torchrun), "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
           f"127.0.0.1:{port}", "--rdzv-id", f"test{port}", "--max-restarts", "0", "-m", "msareid", *argv]
    logs.mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(cmd, stdout=open(logs / f"node{n}.log", "w"), stderr=subprocess.STDOUT, env=env)
            for n in range(2)]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if _parent(int(stat.parent.name)) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return found


def _kill_node_at(nodes: list[subprocess.Popen], log: Path, line: str, rank: int) -> None:
    """SIGKILL the node whose worker is global rank ``rank`` (rank 0's worker logs its pid at start)
    once ``line`` is in ``log``; the other node must then stop by itself, failing."""
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and line in log.read_text()):
        time.sleep(0.002)
    starts = [json.loads(x) for x in log.read_text().splitlines() if '"start"' in x or '"resume"' in x]
    main_agent = _parent(starts[-1]["pid"])  # torchrun's agent of the rank-0 worker
    victim = next(n for n in nodes if (n.pid == main_agent) == (rank == 0))
    for pid in [*_children(victim.pid), victim.pid]:  # the node's worker and its agent
        os.kill(pid, signal.SIGKILL)
    codes = [n.wait(timeout=120) for n in nodes]
    assert codes[nodes.index(victim)] == -signal.SIGKILL and all(c != 0 for c in codes), codes


def test_two_nodes_train_resume_after_either_node_dies_and_equal_one_process(
        synth_sysu: Path, tmp_path: Path, tiny_config, tiny_overrides) -> None:
    # 8 steps of SGD at a small learning rate: see VARIANTS on how float rounding grows with both
    extra = {"sampler.num_ids": 4, "train.epochs": 2, "train.max_steps_per_epoch": 4, "train.checkpoint_every": 1,
             **SGD}
    torch.set_num_threads(1)
    one = train(tiny_config(synth_sysu, tmp_path / "cache", **extra), tmp_path / "one", progress=False)
    out, log = tmp_path / "nodes", tmp_path / "nodes" / "metrics.jsonl"
    argv = ["train", "--config", "configs/tiny.toml", "--out", str(out), "--no-progress"]
    for o in tiny_overrides(synth_sysu, tmp_path / "cache", **extra):
        argv += ["--set", o]
    nodes = _two_nodes(argv, _free_port(), tmp_path / "logs1")
    _kill_node_at(nodes, log, '"event": "checkpoint", "epoch": 0, "step": 2', rank=1)  # the second node
    assert load_checkpoint(out / "last.pt")["step"] >= 2
    resume = ["train", "--resume", str(out), "--no-progress"]
    nodes = _two_nodes(resume, _free_port(), tmp_path / "logs2")
    _kill_node_at(nodes, log, '"event": "checkpoint", "epoch": 1, "step": 1', rank=0)  # the first node
    nodes = _two_nodes(resume, _free_port(), tmp_path / "logs3")
    assert [n.wait(timeout=300) for n in nodes] == [0, 0]
    reports = [(tmp_path / "logs3" / f"node{n}.log").read_text() for n in range(2)]
    assert sum(r.count("trained 2 epochs") for r in reports) == 1  # only global rank 0 reports and writes
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["event"] for x in lines if x["event"] in ("start", "resume")] == ["start", "resume", "resume"]
    assert all(x["world_size"] == 2 for x in lines if x["event"] in ("start", "resume"))
    resumed = load_checkpoint(out / "last.pt")
    assert resumed["epoch"] == 2
    for key, value in one.model.state_dict().items():  # two nodes, two crashes: one process's model
        torch.testing.assert_close(resumed["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_non_finite_loss_stops_naming_step_and_term(synth_sysu: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture, tiny_config) -> None:
    run = tmp_path / "run"
    train(tiny_config(synth_sysu, tmp_path / "cache", **{"train.epochs": 1}), run, progress=False)
    before = _digest(run / "last.pt")
    capsys.readouterr()
    code = main(["train", "--resume", str(run), "--set", "train.epochs=2", "--set", "loss.alpha=nan", "--no-progress"])
    err = capsys.readouterr().err  # a NaN weight is refused by the config itself
    assert code == 2 and err.count("\n") == 1 and "loss.alpha: expected a finite number" in err
    # 1e39 is a finite float64 but overflows float32: the loss itself becomes infinite
    code = main(["train", "--resume", str(run), "--set", "train.epochs=2", "--set", "loss.alpha=1e39", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "non-finite loss at epoch 2, step 1: total = inf, img = inf;" in err  # every bad term, named
    assert _digest(run / "last.pt") == before


def test_truncated_checkpoint_and_existing_run(synth_sysu: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                               tiny_config) -> None:
    run = tmp_path / "run"
    train(tiny_config(synth_sysu, tmp_path / "cache", **{"train.epochs": 1}), run, progress=False)
    capsys.readouterr()
    code = main(["train", "--config", "configs/tiny.toml", "--out", str(run)])
    assert code == 2 and "already holds a run" in capsys.readouterr().err
    data = (run / "last.pt").read_bytes()
    (run / "last.pt").write_bytes(data[: len(data) // 2])
    for argv in (["train", "--resume", str(run)],
                 ["evaluate", "--checkpoint", str(run / "last.pt"), "--dataset", "sysu", "--root", str(synth_sysu)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "last.pt is truncated or not a msareid checkpoint" in err and err.count("\n") == 1


def test_checkpoint_is_weights_only_and_self_describing(synth_sysu: Path, tmp_path: Path, tiny_config) -> None:
    run = tmp_path / "run"
    train(tiny_config(synth_sysu, tmp_path / "cache", **{"train.epochs": 1}), run, progress=False)
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scaler", "epoch", "step", "rng", "config", "num_classes", "versions"} <= set(ckpt)
    assert ckpt["config"]["model"]["backbone"] == "tiny" and ckpt["epoch"] == 1 and ckpt["step"] == 0
    assert (run / "config.toml").is_file() and (run / "epoch_001.pt").is_file()


def test_evaluate_a_checkpoint(synth_sysu: Path, synth_regdb: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture, tiny_config) -> None:
    run = tmp_path / "run"
    train(tiny_config(synth_sysu, tmp_path / "cache", **{"train.epochs": 1}), run, progress=False)
    argv = ["evaluate", "--checkpoint", str(run / "last.pt"), "--dataset", "sysu", "--root", str(synth_sysu),
            "--mode", "all", "--shots", "1", "--json", "--out", str(run / "eval.json")]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"protocol", "queries", "valid_queries", "cmc", "rank1", "rank5", "rank10", "rank20", "mAP",
            "mINP"} <= set(out)
    assert out["protocol"] == "sysu/all/single-shot/agw" and out["feature"] == "bnneck" and len(out["cmc"]) == 20
    assert out["pooled"]["feature"] == "pooled" and json.loads((run / "eval.json").read_text()) == out
    regdb_run = tmp_path / "regdb"
    cfg = tiny_config(synth_regdb, tmp_path / "cache", **{"data.name": "regdb", "data.trial": 4, "train.epochs": 1,
                                                       "sampler.num_ids": 2})
    train(cfg, regdb_run, progress=False)
    assert main(["evaluate", "--checkpoint", str(regdb_run / "last.pt"), "--dataset", "regdb", "--root",
                 str(synth_regdb), "--json", "--flip"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "regdb/trial4/visible-to-thermal" and out["flip"] is True and out["queries"] == 12


def test_periodic_evaluation_is_logged_but_the_last_epoch_is_kept(synth_sysu: Path, tmp_path: Path,
                                                                  tiny_config) -> None:
    from msareid.training.logs import best_evaluation

    run = tmp_path / "run"
    extra = {"eval.every": 1, "eval.trials": 2, "train.epochs": 3}
    summary = train(tiny_config(synth_sysu, tmp_path / "cache", **extra), run, progress=False)
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert [e["epoch"] for e in evals] == [1, 2, 3]
    assert evals[0]["protocol"] == "sysu/all/single-shot/agw" and 0 <= evals[0]["mAP"] <= 1
    assert load_checkpoint(run / "last.pt")["epoch"] == 3
    best = best_evaluation(run, "sysu/all/single-shot/agw", 3)
    top = max(evals, key=lambda e: e["rank1"])  # the first epoch with the highest Rank-1
    assert best == {"epoch": top["epoch"], **{k: top[k] for k in ("rank1", "rank10", "mAP", "mINP")}}
    assert best_evaluation(run, "regdb/trial1/visible-to-thermal", 3) is None  # another protocol's lines
    # evaluating during training leaves training alone: the same weights as a run without it
    plain = train(tiny_config(synth_sysu, tmp_path / "cache", **{**extra, "eval.every": 0}), tmp_path / "plain",
                  progress=False)
    for name, value in plain.model.state_dict().items():
        assert torch.equal(value, summary.model.state_dict()[name]), name
    # killed while evaluating epoch 3 (its checkpoint written, its eval line not): resume evaluates it
    lines = (run / "metrics.jsonl").read_text().splitlines()
    cut = [x for x in lines if not ('"event": "eval"' in x and '"epoch": 3' in x) and '"event": "end"' not in x]
    (run / "metrics.jsonl").write_text("\n".join(cut) + "\n")
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    again = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in again if e["event"] == "eval"] == [1, 2, 3]
    assert [e for e in again if e["event"] == "eval"][-1]["rank1"] == evals[-1]["rank1"]
    # resumed once more with nothing missing: no line is written twice
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert [json.loads(x)["event"] for x in (run / "metrics.jsonl").read_text().splitlines()].count("eval") == 3


@pytest.mark.slow
def test_a_run_killed_while_evaluating_resumes_with_every_evaluation_once(synth_sysu: Path, tmp_path: Path,
                                                                         tiny_config, tiny_overrides) -> None:
    extra = {"eval.every": 1, "eval.trials": 2, "train.epochs": 3}
    whole = tmp_path / "whole"
    train(tiny_config(synth_sysu, tmp_path / "cache", **extra), whole, progress=False)
    killed = tmp_path / "killed"
    checkpointed = '"event": "checkpoint", "epoch": 2, "step": 0'  # the evaluation of epoch 2 starts now
    _train_and_kill_at(killed, tiny_overrides(synth_sysu, tmp_path / "cache", **extra), checkpointed)
    assert main(["train", "--resume", str(killed), "--no-progress"]) == 0

    def evals(folder: Path) -> list[dict]:
        lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in x.items() if k != "time"} for x in lines if x["event"] == "eval"]

    assert evals(killed) == evals(whole) and [e["epoch"] for e in evals(whole)] == [1, 2, 3]
    for name, value in load_checkpoint(whole / "last.pt")["model"].items():
        assert torch.equal(value, load_checkpoint(killed / "last.pt")["model"][name]), name


def test_configs_that_name_the_old_key_still_load(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text("[train]\neval_every = 4\n")
    assert load_config(old).eval.every == 4


def test_a_tiny_dataset_trains_with_fewer_identities_per_batch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from msareid.data.synthetic import SysuSpec, write_sysu

    root = write_sysu(tmp_path / "small", SysuSpec(ids=8, rgb_images=2, ir_images=2))
    argv = ["train", "--config", "configs/tiny.toml", "--set", "data.name=sysu", "--set", f"data.root={root}",
            "--set", "train.epochs=1", "--set", "train.seed=3", "--set", f"data.cache_dir={tmp_path / 'c'}",
            "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 0  # configs/tiny.toml asks for 8 identities a batch; this set has 6
    assert "warning: sampler.num_ids = 8 but only 6 training identities" in capsys.readouterr().err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["epoch"] == 1


def test_tensorboard_without_the_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from msareid.errors import UserError
    from msareid.training.logs import MetricsLog

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    with pytest.raises(UserError, match="pip install tensorboard"):
        MetricsLog(tmp_path, enabled=True, tensorboard=True)
    assert not MetricsLog(tmp_path, enabled=False, tensorboard=True).enabled  # other ranks never import it


def test_train_and_evaluate_on_a_manifest(synth_sysu: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                          tiny_config) -> None:
    from msareid.data.manifest import write_manifest
    from msareid.data.sysu import SysuMM01

    ds = SysuMM01(synth_sysu)
    rgb, ir = ds.train()
    write_manifest(tmp_path / "mine.csv", {"train": rgb + ir, "query": ds.query(), "gallery": ds.gallery("all", 1, 0)})
    cfg = tiny_config(tmp_path / "mine.csv", tmp_path / "cache", **{"data.name": "manifest", "train.epochs": 1})
    train(cfg, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["num_classes"] == len({r.pid for r in rgb + ir})
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "last.pt"), "--dataset", "manifest",
                 "--root", str(tmp_path / "mine.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["queries"] == len(ds.query())


def test_reusing_freed_memory_removes_the_page_faults_of_repeated_large_buffers() -> None:
    """After ``reuse_freed_memory`` a freed 64 MB buffer is handed out again without the kernel
    faulting its pages in anew (what each training step's activations would cost otherwise)."""
    code = """
import resource, sys
import numpy as np
from msareid.allocator import reuse_freed_memory

def faults(rounds=4):
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        buf = np.ones(8 * 2**20)  # 64 MB, above glibc's mmap threshold
        del buf
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

before = faults()
applied = reuse_freed_memory()
faults(1)  # the heap grows once
after = faults()
print(applied, before, after)
sys.exit(0 if applied and before >= 100 and after <= before / 10 else 1)  # huge pages: fewer faults
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_run_folder_has_one_writer(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    from msareid.locks import exclusive

    run = tmp_path / "run"
    shutil.copytree(tiny_checkpoint.parent, run)
    before = (run / "last.pt").read_bytes()
    with exclusive(run, "msareid train"):
        assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{run} is being written by msareid train (pid {os.getpid()}" in err
    assert (run / "last.pt").read_bytes() == before
    # the lock dies with its holder: the same resume now runs
    assert main(["train", "--resume", str(run), "--set", "train.epochs=2", "--no-progress"]) == 0
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
