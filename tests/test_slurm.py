"""``msareid ablate --launcher slurm`` against a real single-node SLURM started for this module
(munged, slurmctld and slurmd from Debian's ``slurm-wlm`` and ``munge``; ``.ci/run`` installs them):
submission through submitit, a requeued task resuming exactly, finished runs skipped on
resubmission, and the status of pending, running, done and failed runs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from msareid.cli import main
from msareid.engine import train
from msareid.recipes import load_config
from msareid.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf(base: Path, host: str) -> str:
    cpus = len(os.sched_getaffinity(0))
    return f"""ClusterName=msareidtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={base}/munge.sock
SlurmUser=root
SlurmdUser=root
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="module")
def slurm() -> Iterator[dict[str, str]]:
    """A private single-node SLURM (its own munge socket, ports and state folder); yields the
    environment that points SLURM's commands at it. Stopped, and its folder removed, at the end."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM of this test runs slurmd as root; run the suite as root (CI does)")
    base = Path(tempfile.mkdtemp(prefix="msareid-slurm-", dir="/tmp"))  # short: a socket path is short
    for sub in ("state", "spool"):
        (base / sub).mkdir()
    key = base / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    conf = base / "slurm.conf"
    conf.write_text(_conf(base, host))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["munged", "--force", f"--socket={base}/munge.sock", f"--key-file={key}",
                    f"--log-file={base}/munged.log", f"--pid-file={base}/munged.pid",
                    f"--seed-file={base}/munged.seed"], check=True, timeout=30)
    daemons = [subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)]
    time.sleep(1)
    daemons.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf), "-N", host], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True).stdout
            if state.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"the test SLURM did not come up: sinfo says {state!r}; see {base}/slurmctld.log")
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run(["scancel", "--me"], env=env, capture_output=True)
        for d in reversed(daemons):
            d.terminate()
            try:
                d.wait(timeout=30)
            except subprocess.TimeoutExpired:
                d.kill()
        subprocess.run(["munged", "--stop", f"--socket={base}/munge.sock"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _queue_state(job: str) -> str:
    lines = subprocess.run(["squeue", "--me", "--array", "-h", "-o", "%i|%T"], capture_output=True,
                           text=True).stdout.splitlines()
    return next((x.split("|")[1] for x in lines if x.split("|")[0] == job), "gone")


def _wait_for(predicate, what: str, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.slow
def test_slurm_array_requeue_resumes_exactly_and_resubmission_skips_finished(
        slurm: dict[str, str], synth_sysu: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm["SLURM_CONF"])
    out = tmp_path / "ab"
    sets = [f"data.root={synth_sysu}", f"data.cache_dir={tmp_path / 'cache'}", "data.height=32", "data.width=16",
            "data.pad=2", "train.epochs=2", "train.warmup_epochs=1", "train.max_steps_per_epoch=30",
            "train.checkpoint_every=1", "train.log_every=1", "train.deterministic=true", "sampler.num_ids=3",
            "sampler.num_instances=2", "eval.trials=1"]
    cmd = ["ablate", "--config", str(REPO / "configs" / "tiny.toml"), "--rows", "table4", "--only", "B,MSA,BAD",
           "--row", "BAD:model.pretrained=/nonexistent/weights.pth", "--seeds", "0", "--out", str(out),
           "--launcher", "slurm", "--slurm-cpus", "1", "--slurm-time", "10", "--slurm-parallel", "2",
           "--slurm-arg", "comment=msareid-test"]
    for s in sets:
        cmd += ["--set", s]
    assert main(cmd) == 0
    said = capsys.readouterr().out
    assert "submitted 3 run(s) as job array" in said and "slurm: 3 runs:" in said
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())["runs"]
    assert sorted(jobs) == ["runs/B/seed0", "runs/BAD/seed0", "runs/MSA/seed0"]
    script = next((out / "slurm" / "logs").glob("*/*_submission.sh")).read_text()
    assert "--cpus-per-task=1" in script and "--requeue" in script and "--comment=msareid-test" in script

    # requeue MSA's task while it trains, after a checkpoint within its first epoch
    msa, job = out / "runs" / "MSA" / "seed0", jobs["runs/MSA/seed0"]["job_id"]
    log = msa / "metrics.jsonl"
    _wait_for(lambda: log.exists() and '"event": "checkpoint", "epoch": 0, "step": 3' in log.read_text(),
              "MSA's third checkpoint")
    subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
    _wait_for(lambda: _queue_state(job) == "PENDING", "the requeued task to be pending", 60)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True, capture_output=True)

    capsys.readouterr()
    assert main(cmd + ["--status"]) == 0  # submits nothing
    said = capsys.readouterr().out
    assert "submitted" not in said and ("MSA seed 0: pending" in said or "MSA seed 0: running" in said)

    # submitting again submits nothing queued or done, waits, writes the tables; BAD failed with its log
    code = main(cmd + ["--wait", "--poll", "1"])
    captured = capsys.readouterr()
    assert "submitted" not in captured.out and "slurm: 3 runs: 2 done, 1 failed" in captured.out
    assert code == 2 and "1 run(s) did not finish; first: BAD seed 0 (failed: " in captured.err
    assert "/nonexistent/weights.pth does not exist" in captured.err and "_log.err" in captured.err
    table = json.loads((out / "ablation.json").read_text())
    assert [r["name"] for r in table["rows"]] == ["B", "MSA"]

    events = [json.loads(x)["event"] for x in log.read_text().splitlines()]
    assert events.count("start") == 1 and events.count("resume") == 1  # resumed, not started again
    monkeypatch.setenv("MSAREID_THREADS", "1")  # the task's threads (--slurm-cpus 1): the same float rounding
    whole = train(load_config(str(msa / "planned.toml")), tmp_path / "whole", progress=False)
    requeued = load_checkpoint(msa / "last.pt")["model"]
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, requeued[name]), name

    # once more: the finished runs are skipped, the failed one is submitted again
    without_bad = cmd[: cmd.index("--row")] + cmd[cmd.index("--row") + 2 :]  # a --row row is always kept
    assert main(without_bad + ["--only", "B,MSA"]) == 0
    said = capsys.readouterr().out
    assert "submitted" not in said and "slurm: 2 runs: 2 done" in said


def test_a_task_larger_than_every_node_is_refused_before_submission(slurm: dict[str, str], tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture) -> None:
    """It would wait in the queue forever (the default --slurm-cpus 4 on smaller nodes): sinfo says so first."""
    for key, value in slurm.items():
        monkeypatch.setenv(key, value)
    cmd = ["ablate", "--config", str(REPO / "configs" / "tiny.toml"), "--rows", "table4", "--only", "B", "--seeds",
           "0", "--out", str(tmp_path / "ab"), "--launcher", "slurm", "--slurm-cpus", "999"]
    assert main(cmd) == 2
    assert "--slurm-cpus 999: the largest node of the cluster has" in capsys.readouterr().err
    assert not (tmp_path / "ab" / "slurm" / "jobs.json").exists()
