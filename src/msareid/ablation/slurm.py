"""The SLURM launcher of ``msareid ablate``: every planned (row, seed) one task of a SLURM job
array, submitted through submitit (``pip install 'msareid[slurm]'``).

A task does exactly what a local run does (:func:`msareid.ablation.runner.execute`): train, or
resume from the run's ``last.pt``, then evaluate. So a task that SLURM requeues (preemption,
``scontrol requeue``) or that submitit requeues at its time limit (SIGUSR2 before the limit; the
task is checkpointable) continues from its last checkpoint and ends with the weights of an
uninterrupted run. How often a run checkpoints within an epoch is ``train.checkpoint_every``.

The launcher decides nothing about results: a run is done when its folder says so (the store,
``runner``). It records which job runs which run folder in ``OUT/slurm/jobs.json`` and reports the
queue's view (``squeue``: pending, running) beside the store's (done); a run whose job has left
the queue unfinished is failed, with its log. Submitting again skips finished runs and runs still
queued, and submits the rest (new, failed) as a new array.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msareid.ablation.folders import run_state
from msareid.ablation.plan import PlannedRun
from msareid.ablation.runner import execute
from msareid.errors import UserError
from msareid.fileio import write_text
from msareid.threads import available_cores

QUEUED = {"PENDING": "pending", "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running",
          "REQUEUED": "pending", "REQUEUE_FED": "pending", "REQUEUE_HOLD": "pending", "RESIZING": "pending",
          "SUSPENDED": "pending", "STOPPED": "pending", "SIGNALING": "running", "STAGE_OUT": "running",
          "SPECIAL_EXIT": "pending"}
# squeue reasons of a pending job that waiting cannot end: the request exceeds what the cluster or
# the account allows (the job must be cancelled and submitted with other settings).
NEVER_STARTS = ("PartitionConfig", "BadConstraints", "PartitionNodeLimit", "PartitionTimeLimit", "ReqNodeNotAvail",
                "InvalidQOS", "InvalidAccount", "DependencyNeverSatisfied", "QOSMaxCpuPerJobLimit",
                "AssocMaxCpuPerJobLimit", "QOSMaxGRESPerJob", "AssocMaxGRESPerJob")
JOBS_FILE = Path("slurm") / "jobs.json"
LOGS = Path("slurm") / "logs"


@dataclass(frozen=True)
class SlurmOptions:
    """What each task asks of SLURM (``sbatch`` options); ``extra`` passes any other ``sbatch``
    option through (``{"qos": "high", "account": "lab"}`` -> ``--qos=high --account=lab``)."""

    partition: str | None = None
    gpus: int = 0  # per run
    cpus: int = 4  # per run: its torch threads
    mem_gb: float | None = None
    time_min: int = 24 * 60
    parallel: int = 64  # tasks of the array running at once
    extra: dict[str, str] = field(default_factory=dict)

    def parameters(self) -> dict[str, Any]:
        """submitit's ``SlurmExecutor`` parameters."""
        params: dict[str, Any] = {"time": self.time_min, "cpus_per_task": self.cpus, "job_name": "msareid-ablate",
                                  "array_parallelism": self.parallel,
                                  "additional_parameters": {"requeue": True, **self.extra}}
        if self.partition:
            params["partition"] = self.partition
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.mem_gb:
            params["mem"] = f"{max(1, round(self.mem_gb * 1024))}M"
        return params


class RunTask:
    """One planned run as a submitit task; checkpointable, so at its time limit submitit requeues
    it as it is (it resumes from the run's own checkpoint)."""

    def __init__(self, run: PlannedRun) -> None:
        self.run = run

    def __call__(self) -> dict[str, Any]:
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK") or available_cores())
        return execute(self.run, threads)  # SLURM sets CUDA_VISIBLE_DEVICES to the task's GPUs

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(RunTask(self.run))


def _submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit: pip install 'msareid[slurm]'") from None
    return submitit


def read_jobs(out: Path) -> dict[str, dict[str, Any]]:
    """``run_dir`` (relative to ``out``) -> its latest job (``job_id``, ``submitted``)."""
    path = out / JOBS_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return {str(k): dict(v) for k, v in data["runs"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"{path} is not a msareid job record (expected {{\"runs\": {{run_dir: {{job_id}}}}}}); "
                        "move it aside to forget the submitted jobs") from None


def submit(runs: list[PlannedRun], out: Path, options: SlurmOptions) -> dict[str, str]:
    """Submit ``runs`` as one job array; returns run_dir -> job id, also recorded in ``jobs.json``."""
    if not runs:
        return {}
    submitit = _submitit()
    if shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: sbatch is not on PATH; run ablate on a machine of the cluster "
                        "(a login node) with SLURM's commands")
    _check_node_size(options)
    executor = submitit.SlurmExecutor(folder=str((out / LOGS).resolve()) + "/%j", max_num_timeout=10)
    executor.update_parameters(**options.parameters())
    try:
        with executor.batch():
            jobs = [executor.submit(RunTask(run)) for run in runs]
    except Exception as exc:  # sbatch refused (unknown partition, bad option ...)
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[-1][:300]
        raise UserError(f"sbatch refused the job array: {first}") from None
    record = read_jobs(out)
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    submitted = {}
    for run, job in zip(runs, jobs):
        rel = run.folder.relative_to(out).as_posix()
        record[rel] = {"job_id": str(job.job_id), "submitted": now}
        submitted[rel] = str(job.job_id)
    write_text(out / JOBS_FILE, json.dumps({"runs": record}, indent=1))
    return submitted


def _check_node_size(options: SlurmOptions) -> None:
    """A task asking more CPUs than any node of its partition has would wait in the queue forever:
    refused before submission (skipped where ``sinfo`` cannot say)."""
    argv = ["sinfo", "--noheader", "--format=%c", *(["--partition", options.partition] if options.partition else [])]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return
    sizes = [int(x) for x in re.findall(r"\d+", done.stdout)] if done.returncode == 0 else []
    if sizes and options.cpus > max(sizes):
        where = f"partition {options.partition}" if options.partition else "the cluster"
        raise UserError(f"--slurm-cpus {options.cpus}: the largest node of {where} has {max(sizes)} CPUs, so the "
                        f"tasks could never start; give --slurm-cpus {max(sizes)} or fewer")


def queue() -> dict[str, str]:
    """This user's jobs in SLURM's queue: job id (array tasks as ``123_4``) -> ``STATE|reason``
    (``PENDING|Resources``, ``RUNNING|None`` ...)."""
    try:
        done = subprocess.run(["squeue", "--me", "--array", "--noheader", "--format=%i|%T|%r"],
                              capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError("--launcher slurm: squeue is not on PATH; run ablate on a machine of the cluster") from None
    if done.returncode != 0:
        raise UserError(f"squeue failed: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    states = {}
    for line in done.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            states[job] = state.strip()
    return states


@dataclass(frozen=True)
class TaskStatus:
    """Where one planned run stands: ``done`` (the store), ``pending`` / ``running`` (the queue),
    ``failed`` (its job left the queue unfinished) or ``not submitted``."""

    run: PlannedRun
    state: str
    job_id: str | None = None
    log: Path | None = None
    reason: str = ""


def _log_of(out: Path, job_id: str) -> Path:
    return out / LOGS / job_id / f"{job_id}_0_log.err"


def _lines(path: Path) -> list[str]:
    try:
        return [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return []


def _reason(run: PlannedRun, log: Path) -> str:
    """Why a run failed: the error line of the run's own ``ablate.log`` (what ``msareid`` said), else
    the last exception of the task's log, else its last line."""
    own = [x for x in _lines(run.folder / "ablate.log") if "error" in x.lower()]
    if own:
        return own[-1][:300]
    lines = [x for x in _lines(log) if not x.startswith("srun:")]
    exceptions = [x for x in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b", x)]
    return (exceptions or lines or ["no log yet"])[-1][:300]


def statuses(runs: list[PlannedRun], out: Path, states: dict[str, str] | None = None) -> list[TaskStatus]:
    """Each run's status from the store (done), the job record and the queue."""
    jobs = read_jobs(out)
    states = queue() if states is None else states
    result = []
    for run in runs:
        job = jobs.get(run.folder.relative_to(out).as_posix())
        if run_state(run) == "done":
            result.append(TaskStatus(run, "done", job and job["job_id"]))
        elif job is None:
            result.append(TaskStatus(run, "not submitted"))
        elif job["job_id"] in states:
            state, _, why = states[job["job_id"]].partition("|")
            why = "" if why.strip() in ("", "None") else why.strip()
            result.append(TaskStatus(run, QUEUED.get(state, state.lower()), job["job_id"], reason=why))
        else:
            log = _log_of(out, job["job_id"])
            if not log.is_file():  # cancelled or refused before it started: there is no log to point to
                result.append(TaskStatus(run, "failed", job["job_id"], None,
                                         "it ended before it started (cancelled, or refused by SLURM); no log"))
            else:
                result.append(TaskStatus(run, "failed", job["job_id"], log, _reason(run, log)))
    return result


def _never_starts(reason: str) -> bool:
    return any(reason.startswith(r) for r in NEVER_STARTS)


def describe_statuses(found: list[TaskStatus]) -> list[str]:
    """A summary line, then one line a run that is not done (failed ones with their log)."""
    counts: dict[str, int] = {}
    for s in found:
        counts[s.state] = counts.get(s.state, 0) + 1
    order = ("done", "running", "pending", "failed", "not submitted")
    lines = [f"slurm: {len(found)} runs: " + ", ".join(f"{counts[k]} {k}" for k in order if k in counts)]
    for s in found:
        if s.state == "done":
            continue
        where = f" (job {s.job_id})" if s.job_id else ""
        tail = (f": {s.reason}" + (f"; log {s.log}" if s.log else "")) if s.state == "failed" else ""
        if s.state == "pending" and s.reason:
            tail = f": waiting for {s.reason}" + (" (it never starts: cancel it and submit with settings the "
                                                   "cluster has)" if _never_starts(s.reason) else "")
        lines.append(f"  {s.run.row.name} seed {s.run.seed}: {s.state}{where}{tail}")
    return lines


def launch(runs: list[PlannedRun], out: Path, options: SlurmOptions, echo: Callable[[str], None],
           submit_new: bool = True) -> list[TaskStatus]:
    """Submit every run that is neither done nor queued (unless not ``submit_new``); returns the
    statuses after submission."""
    found = statuses(runs, out)
    todo = [s.run for s in found if s.state in ("failed", "not submitted")]
    if submit_new and todo:
        ids = submit(todo, out, options)
        echo(f"slurm: submitted {len(ids)} run(s) as job array {next(iter(ids.values())).split('_')[0]}; "
             f"logs under {out / LOGS}")
        found = statuses(runs, out)
    for line in describe_statuses(found):
        echo(line)
    return found


def wait(runs: list[PlannedRun], out: Path, echo: Callable[[str], None], poll_s: float = 30.0) -> list[TaskStatus]:
    """Poll the queue until no run is pending or running; prints each change of the counts."""
    last = None
    while True:
        found = statuses(runs, out)
        summary = describe_statuses(found)[0]
        if summary != last:
            echo(summary)
            last = summary
        if not any(s.state in ("pending", "running") for s in found):
            return found
        queued = [s for s in found if s.state in ("pending", "running")]
        if all(s.state == "pending" and _never_starts(s.reason) for s in queued):
            first = queued[0]
            raise UserError(f"{len(queued)} queued run(s) can never start: SLURM says {first.reason} (job "
                            f"{first.job_id}); cancel them (scancel) and submit with settings the cluster has, "
                            "e.g. fewer --slurm-cpus")
        time.sleep(poll_s)


def slurm_ablation(runs: list[PlannedRun], out: Path, options: SlurmOptions, echo: Callable[[str], None],
                   status_only: bool = False, wait_poll_s: float | None = None) -> list[TaskStatus]:
    """``ablate --launcher slurm``: submit what is neither done nor queued (the folder locked while
    it is written), print where every run stands; with ``wait_poll_s``, wait until none is queued.
    ``status_only`` submits nothing and takes no lock."""
    from msareid.ablation.runner import check_configs
    from msareid.locks import exclusive

    if status_only:
        found = statuses(runs, out)
        for line in describe_statuses(found):
            echo(line)
    else:
        with exclusive(out, "msareid ablate"):
            check_configs(runs)
            found = launch(runs, out, options, echo)
    if wait_poll_s is not None:
        found = wait(runs, out, echo, wait_poll_s)
    return found
