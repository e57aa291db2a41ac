"""Run an ablation: every (row, seed) an ordinary run folder ``OUT/runs/<row>/seed<S>``, trained
in a child process (:mod:`msareid.ablation.job`, what ``msareid train`` and ``msareid evaluate
--checkpoint`` do) with the run's own protocol, then ``OUT/ablation.json`` and ``OUT/ablation.md``.

Resumable: a run with its ``eval.json`` is skipped, a run with a ``last.pt`` continues as
``train --resume`` does (exactly as an uninterrupted run), a run folder killed before its first
checkpoint starts again from nothing. Runs go ``jobs`` at a time, each with its share of the cores
(``$MSAREID_THREADS``), so jobs x threads never exceeds the cores.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from msareid.ablation.folders import check_same_config, move_aside, read_eval, recover, run_state
from msareid.ablation.plan import PlannedRun, prepare
from msareid.ablation.rows import Row
from msareid.ablation.stats import METRICS, markdown, summarise
from msareid.config import NOT_IDENTITY, Config, config_to_dict, dump_toml
from msareid.errors import UserError
from msareid.fileio import write_text
from msareid.locks import LOCK_NAME, exclusive
from msareid.systems import row_keys
from msareid.threads import ENV as THREADS_ENV
from msareid.threads import available_cores
from msareid.training.logs import best_evaluation


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the child gets SIGKILL when the ablation process dies, so no orphan keeps writing."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class GpuSlots:
    """Which GPU each local run gets: the visible GPU running the fewest runs now (the lowest index
    on ties), so ``--jobs N`` over G GPUs puts one run on each while N <= G and spreads the rest
    evenly; a child sees only its GPU (``CUDA_VISIBLE_DEVICES``), as its ``cuda`` / ``auto``."""

    def __init__(self, gpus: list[str]) -> None:
        self.gpus = list(gpus)
        self._busy = {g: 0 for g in self.gpus}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def take(self) -> Iterator[str | None]:
        if not self.gpus:
            yield None
            return
        with self._lock:
            gpu = min(self.gpus, key=lambda g: (self._busy[g], self.gpus.index(g)))
            self._busy[gpu] += 1
        try:
            yield gpu
        finally:
            with self._lock:
                self._busy[gpu] -= 1


def visible_gpus(requested: str | None = None) -> list[str]:
    """``--gpus 0,2`` as given; else ``$CUDA_VISIBLE_DEVICES`` when set; else every GPU torch sees
    (none on a machine without CUDA: the runs then use the CPU)."""
    if requested is not None:
        gpus = [g.strip() for g in requested.split(",") if g.strip()]
        if not gpus:
            raise UserError(f"--gpus {requested!r}: expected GPU indices or UUIDs separated by commas, e.g. 0,1")
        _check_gpus(requested, gpus, visible_gpus())
        return gpus
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def _check_gpus(requested: str, gpus: list[str], present: list[str]) -> None:
    """GPUs that are not there are refused (their runs would quietly train on the CPU): an index
    must be below the number of GPUs torch sees (or be one of ``$CUDA_VISIBLE_DEVICES``)."""
    if not present:
        raise UserError(f"--gpus {requested}: no GPU is visible on this machine; leave --gpus out to train on the CPU")
    unknown = [g for g in gpus if g not in present and not (g.isdigit() and int(g) < len(present))]
    if unknown:
        raise UserError(f"--gpus {requested}: no GPU {', '.join(unknown)} here; the visible GPUs are "
                        f"{', '.join(present)}")


def _child(steps: list[dict[str, Any]], log: Path, threads: int, gpu: str | None = None) -> None:
    """Run the steps of a run (:mod:`msareid.ablation.job`) in one child process with ``threads``
    torch threads (and only ``gpu`` visible, when given)."""
    env = {**os.environ, THREADS_ENV: str(threads), "OMP_NUM_THREADS": str(threads)}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    with open(log, "a") as fh:
        proc = subprocess.run([sys.executable, "-m", "msareid.ablation.job", json.dumps(steps)], stdout=fh,
                              stderr=subprocess.STDOUT, env=env,
                              preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"run {log.parent} failed (exit {proc.returncode}): {tail[0]}; see {log}")


def _prepare(run: PlannedRun) -> tuple[str, list[dict[str, Any]]]:
    """The run's state and the steps of its child process, with the folder made ready for them,
    all under the run folder's lock: a folder another process writes (a ``msareid train``, a SLURM
    task, another ablation) is refused, and nothing in it is removed or moved."""
    with exclusive(run.folder, "msareid ablate (preparing the run)"):
        state = run_state(run)
        if state == "recover":
            state = recover(run)
        elif state == "aside":
            move_aside(run)
            state = "new"
        elif state == "new":  # killed before its first checkpoint: it holds no checkpoint
            for leftover in run.folder.iterdir():
                if leftover.name != LOCK_NAME:
                    shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        run.folder.mkdir(parents=True, exist_ok=True)
        steps: list[dict[str, Any]] = []
        if state == "new":
            planned = write_text(run.folder / "planned.toml", dump_toml(run.config))
            steps.append({"train": str(planned), "out": str(run.folder)})
        elif state == "resume":  # eval.json, if any, stays until the longer run's replaces it
            steps.append({"resume": str(run.folder), "values": _planned_values(run)})
    return state, steps


def _planned_values(run: PlannedRun) -> dict[str, dict[str, Any]]:
    """What a resumed run takes from its planned config: ``train.epochs``, the settings that are not
    part of its identity (workers, cache, device, threads, logging) and the evaluation settings."""
    planned = config_to_dict(run.config)
    values: dict[str, dict[str, Any]] = {"train": {"epochs": run.config.train.epochs}, "eval": planned["eval"]}
    for dotted in NOT_IDENTITY:
        section, key = dotted.split(".")
        values.setdefault(section, {})[key] = planned[section][key]
    return values


def execute(run: PlannedRun, threads: int, gpu: str | None = None) -> dict[str, Any]:
    """Train (or resume) and evaluate one run in a child process (seeing only ``gpu``, when given);
    returns its metrics."""
    state, steps = _prepare(run)
    if state != "done":
        steps.append({"evaluate": str(run.folder / "last.pt"), "out": str(run.folder / "eval.json"),
                      "eval": config_to_dict(run.config)["eval"]})
        _child(steps, run.folder / "ablate.log", threads, gpu)
    result = read_eval(run.folder)
    if result is None:
        raise UserError(f"{run.folder / 'eval.json'} is missing or lacks {', '.join(METRICS)}")
    return result


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def run_ablation(base: Config, rows: list[Row], seeds: list[int], out: str | os.PathLike[str], jobs: int = 1,
                 baseline: str | None = None, meta: dict[str, Any] | None = None,
                 echo: Callable[[str], None] = print, collect_only: bool = False,
                 epochs: int | None = None, keep_going: bool = False,
                 mixed_protocols: bool = False, gpus: list[str] | None = None) -> dict[str, Any]:
    """Run (or continue) the ablation into ``out``; returns what ``ablation.json`` holds.

    ``collect_only`` trains nothing: the tables hold the runs finished so far (e.g. of a study cut
    short), each row with the seeds it has, differences over the seeds both rows have. ``epochs``
    scales every row's schedule to that many epochs (:func:`plan`). A failed run stops the
    ablation before another run starts, unless ``keep_going`` (then the tables hold the runs that
    finished and the failures are reported at the end). Rows scored under different protocols are
    refused unless ``mixed_protocols`` (then differences pair runs of one protocol only). ``gpus``:
    the GPUs the runs share (:class:`GpuSlots`); none, the runs see what this process sees.
    """
    out = Path(out)
    if jobs < 1:
        raise UserError(f"--jobs must be 1 or more, got {jobs}")
    runs, baseline = prepare(base, rows, seeds, out, epochs, baseline, mixed_protocols)
    # one writer an ablation folder; --collect only reads finished runs, so it works beside one
    owner = contextlib.nullcontext() if collect_only else exclusive(out, "msareid ablate")
    with owner:
        return _run_ablation(runs, rows, seeds, out, jobs, baseline, meta, echo, collect_only, keep_going,
                             GpuSlots(gpus or []))


def check_configs(runs: list[PlannedRun], restore: bool = True) -> None:
    """Each existing run folder holds the config its planned run trains (else a UserError)."""
    for run in runs:
        check_same_config(run, restore=restore)


def _run_ablation(runs: list[PlannedRun], rows: list[Row], seeds: list[int], out: Path, jobs: int,
                  baseline: str, meta: dict[str, Any] | None, echo: Callable[[str], None],
                  collect_only: bool, keep_going: bool, slots: GpuSlots) -> dict[str, Any]:
    check_configs(runs, restore=not collect_only)
    cores = available_cores()
    jobs = min(jobs, len(runs))
    threads = max(1, cores // jobs)
    if jobs > cores:
        echo(f"warning: --jobs {jobs} on {cores} cores: runs will share cores (1 thread each)")
    on = f", on GPU(s) {','.join(slots.gpus)}" if slots.gpus else ""
    states = {run.folder: run_state(run) for run in runs}
    todo = [] if collect_only else [run for run in runs if states[run.folder] != "done"]
    if collect_only:
        runs = [run for run in runs if states[run.folder] == "done"]
        if not runs:
            raise UserError(f"--collect: no finished run under {out / 'runs'} for these rows and seeds")
    echo(f"ablation: {len(rows)} rows x {len(seeds)} seeds = {len(runs)} runs, {len(runs) - len(todo)} done "
         f"already; {jobs} at a time, {threads} thread(s) each{on}; into {out}")
    results: dict[Path, dict[str, Any]] = {run.folder: read_eval(run.folder) for run in runs
                                           if states[run.folder] == "done"}
    start, lock, finished = time.perf_counter(), threading.Lock(), [0]
    stop, failures = threading.Event(), []

    def one(run: PlannedRun) -> None:
        if stop.is_set():  # an earlier run failed: start no other
            return
        t0 = time.perf_counter()
        try:
            with slots.take() as gpu:
                results[run.folder] = execute(run, threads, gpu)
        except UserError as exc:
            with lock:
                failures.append(str(exc))
            if not keep_going:
                stop.set()  # set here, in the worker, so that the next queued run sees it before starting
                raise
            echo(f"failed, going on (--keep-going): {exc}")
            return
        with lock:
            finished[0] += 1
            elapsed = time.perf_counter() - start
            left = elapsed / finished[0] * (len(todo) - finished[0])
            r = results[run.folder]
            echo(f"[{len(runs) - len(todo) + finished[0]}/{len(runs)}] {run.row.name} seed {run.seed} "
                 f"({states[run.folder]}): Rank-1 {100 * r['rank1']:.2f}, mAP {100 * r['mAP']:.2f} in "
                 f"{_fmt(time.perf_counter() - t0)}; elapsed {_fmt(elapsed)}, about {_fmt(left)} left")

    _in_parallel(one, todo, jobs)
    runs = [run for run in runs if run.folder in results]
    result = _collect(runs, rows, results, baseline, meta or {}, out)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "ablation.json", json.dumps(result, indent=1))
    write_text(out / "ablation.md", markdown(result))
    echo(f"wrote {out / 'ablation.json'} and {out / 'ablation.md'} in {_fmt(time.perf_counter() - start)}")
    if failures:
        raise UserError(f"{len(failures)} run(s) failed, the tables hold the others; first: {failures[0]}")
    return result


def _in_parallel(one: Callable[[PlannedRun], None], runs: list[PlannedRun], jobs: int) -> None:
    """``one(run)`` for every run, ``jobs`` at a time; the first exception cancels the runs not started."""
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, run) for run in runs]
        try:
            for f in cf.as_completed(futures):
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _collect(runs: list[PlannedRun], rows: list[Row], results: dict[Path, dict[str, Any]], baseline: str,
             meta: dict[str, Any], out: Path) -> dict[str, Any]:
    """What ``ablation.json`` holds; run folders are given relative to ``out``, so a copied or moved
    ablation folder reports its own runs."""
    table = []
    for row in rows:
        mine = [run for run in runs if run.row.name == row.name]
        entries = []
        for run in mine:
            r = results[run.folder]
            entry = {"seed": run.seed, "run_dir": run.folder.relative_to(out).as_posix(),
                     "protocol": str(r.get("protocol", "")), **{k: float(r[k]) for k in METRICS}}
            best = best_evaluation(run.folder, r.get("protocol", ""), run.config.train.epochs)
            if best is not None:
                entry["best"] = best
            entries.append(entry)
        if not mine:
            continue
        resolved = {k: config_to_dict(mine[0].config)[k.split(".")[0]][k.split(".")[1]] for k in row_keys()}
        protocols = sorted({e["protocol"] for e in entries})
        table.append({"name": row.name, "settings": dict(row.settings), "resolved": resolved,
                      "protocol": " | ".join(protocols), "runs": entries})
    rows_out = summarise(table, baseline)
    first = rows_out[0]["protocol"] if rows_out else ""
    base = next((r["protocol"] for r in rows_out if r["name"] == baseline), first)
    mixed = len({r["protocol"] for r in rows_out}) > 1
    return {"rows": rows_out, "baseline": baseline, "protocol": base, "mixed_protocols": mixed, **meta}
