"""Ranking-metric benchmark: the vectorised, chunked metrics against a per-query loop.

The per-query loop is written the way the reference evaluation code is: one stable argsort of the
whole distance matrix, then a Python loop over queries with the camera filter, identity
de-duplication (``np.unique``), AP and INP computed one query at a time. Both give the same
numbers (checked here); the loop is the baseline of the speed-up.

Whole processes (``--processes``): the command a user runs, ``msareid evaluate --features F.npz
--protocol sysu|regdb --json``, against a reference-style process that loads the same npz, computes
the similarity matrix in float64 as the reference test script does and calls a re-implementation
of the reference ``eval_sysu`` / ``eval_regdb`` written the way that code is (argsort of the whole
matrix, then per query: the camera filter, ``np.unique`` de-duplication, and the running precision
of AP as a Python loop over the ranking). Both print their figures; they must agree.

Usage: python bench/eval_bench.py [--large 20000] [--skip-large] [--processes] [--only-processes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from msareid.data.regdb import RegDB
from msareid.data.sysu import SysuMM01
from msareid.eval.metrics import evaluate_distance, evaluate_features, l2_normalize


def per_query_loop(dist, q_pids, q_cams, g_pids, g_cams, sysu: bool, max_rank: int = 20):
    indices = np.argsort(dist, axis=1, kind="stable")
    pred = g_pids[indices]
    matches = (pred == q_pids[:, None]).astype(np.int32)
    all_cmc, all_ap, all_inp, valid = [], [], [], 0
    for i in range(len(q_pids)):
        order = indices[i]
        keep = ~((q_cams[i] == 3) & (g_cams[order] == 2)) if sysu else np.ones(len(order), dtype=bool)
        raw = matches[i][keep]
        if not np.any(raw):
            continue
        if sysu:
            ids = pred[i][keep]
            first = np.unique(ids, return_index=True)[1]
            dedup = ids[np.sort(first)]
            cmc = (dedup == q_pids[i]).astype(np.int32).cumsum()
            cmc = np.pad(cmc, (0, max(0, max_rank - len(cmc))), mode="edge")
        else:
            cmc = raw.cumsum()
            cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        hits = raw.cumsum()
        pos = np.where(raw == 1)[0]
        all_inp.append(hits[pos[-1]] / (pos[-1] + 1.0))
        all_ap.append(((hits / (np.arange(len(raw)) + 1.0)) * raw).sum() / raw.sum())
        valid += 1
    return np.mean(all_cmc, axis=0), float(np.mean(all_ap)), float(np.mean(all_inp))


def problem(n_q: int, n_g: int, ids: int, seed: int, dims: int = 2048):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dims)).astype(np.float32)
    q_pids, g_pids = np.sort(rng.integers(0, ids, n_q)), np.sort(rng.integers(0, ids, n_g))  # id by id, as SYSU
    q = centres[q_pids] + 3 * rng.normal(size=(n_q, dims)).astype(np.float32)
    g = centres[g_pids] + 3 * rng.normal(size=(n_g, dims)).astype(np.float32)
    return q, g, q_pids, rng.choice([3, 6], n_q), g_pids, rng.choice([1, 2, 4, 5], n_g)


def timed(fn, *args, **kwargs):
    tracemalloc.start()
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak / 2**20


def compare(name: str, n_q: int, n_g: int, ids: int, trials: int, sysu: bool) -> None:
    """Metrics from a float32 distance matrix (the part the two differ in), and end to end from features."""
    t_vec = t_loop = t_feat = 0.0
    peak_vec = peak_loop = 0.0
    rules = SysuMM01.rules if sysu else RegDB.rules
    for trial in range(trials):
        q, g, q_pids, q_cams, g_pids, g_cams = problem(n_q, n_g, ids, trial)
        dist = -(l2_normalize(q) @ l2_normalize(g).T)
        ids_cams = (q_pids, q_cams, g_pids, g_cams)
        vec, s1, m1 = timed(evaluate_distance, dist, *ids_cams, rules=rules)
        ref, s2, m2 = timed(per_query_loop, dist, *ids_cams, sysu=sysu)
        _, s3, _ = timed(evaluate_features, q, g, *ids_cams, rules=rules)
        np.testing.assert_allclose(vec.cmc, ref[0], rtol=0, atol=1e-12)
        assert abs(vec.mAP - ref[1]) < 1e-9 and abs(vec.mINP - ref[2]) < 1e-9
        t_vec, t_loop, t_feat = t_vec + s1, t_loop + s2, t_feat + s3
        peak_vec, peak_loop = max(peak_vec, m1), max(peak_loop, m2)
    print(f"{name:<30} per-query loop {t_loop:6.2f}s | vectorised {t_vec:5.2f}s ({t_loop / t_vec:4.1f}x) "
          f"| peak memory {peak_vec:3.0f} vs {peak_loop:3.0f} MiB | identical numbers "
          f"| from 2048-d features {t_feat:5.2f}s")


REFERENCE_PROCESS = r"""
import json, sys
import numpy as np

def reference_eval(distmat, q_pids, g_pids, q_cams, g_cams, sysu, max_rank=20):
    num_q, num_g = distmat.shape
    indices = np.argsort(distmat, axis=1)
    pred = g_pids[indices]
    matches = (pred == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp, valid = [], [], [], 0.0
    for q in range(num_q):
        order = indices[q]
        if sysu:
            keep = np.invert((q_cams[q] == 3) & (g_cams[order] == 2))
        else:
            keep = np.ones(len(order), dtype=bool)  # RegDB: nothing removed
        raw = matches[q][keep]
        if not np.any(raw):
            continue
        if sysu:
            ids = pred[q][keep]
            first_at = np.unique(ids, return_index=True)[1]
            dedup = [ids[i] for i in sorted(first_at)]
            cmc = (np.asarray(dedup) == q_pids[q]).astype(np.int32).cumsum()
        else:
            cmc = raw.cumsum()
        hits = raw.cumsum()
        last = np.max(np.where(raw == 1))
        all_inp.append(hits[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        valid += 1.0
        precision = [x / (i + 1.0) for i, x in enumerate(hits)]
        all_ap.append((np.asarray(precision) * raw).sum() / raw.sum())
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / valid
    return cmc, np.mean(all_ap), np.mean(all_inp)

data = np.load(sys.argv[1])
q, g = data["query_feat"], data["gallery_feat"]
q = q / np.linalg.norm(q, axis=1, keepdims=True)
g = g / np.linalg.norm(g, axis=1, keepdims=True)
distmat = np.matmul(q, np.transpose(g))
cmc, m_ap, m_inp = reference_eval(-distmat, data["query_pid"], data["gallery_pid"], data["query_cam"],
                                  data["gallery_cam"], sys.argv[2] == "sysu")
print(json.dumps({"rank1": float(cmc[0]), "mAP": float(m_ap), "mINP": float(m_inp)}))
"""


def _write_npz(path: Path, n_q: int, n_g: int, ids: int, dims: int, sysu: bool) -> None:
    q, g, q_pids, q_cams, g_pids, g_cams = problem(n_q, n_g, ids, 0, dims=dims)
    if not sysu:
        q_cams, g_cams = np.ones(n_q, dtype=np.int64), np.full(n_g, 2, dtype=np.int64)
    np.savez(path, query_feat=q.astype(np.float64), gallery_feat=g.astype(np.float64), query_pid=q_pids,
             gallery_pid=g_pids, query_cam=q_cams, gallery_cam=g_cams)


def _process(cmd: list[str], repeat: int) -> tuple[float, dict]:
    """Best wall time of ``repeat`` runs of ``cmd`` as a fresh process, and its JSON output."""
    best, out = float("inf"), {}
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        out = json.loads(done.stdout.strip().splitlines()[-1])
    return best, out


def processes(repeat: int = 3) -> None:
    """``msareid evaluate --features`` against the reference-style process, both from an npz."""
    msareid = str(Path(sys.executable).with_name("msareid"))
    threads = os.environ.get("OMP_NUM_THREADS", str(os.cpu_count()))
    print(f"whole processes (best of {repeat}, {threads} thread(s) for BLAS), float64 features in an npz:")
    cases = (("SYSU multi-shot 3803x3010, 256-d", 3803, 3010, 96, 256, True),
             ("SYSU multi-shot 3803x3010, 2048-d", 3803, 3010, 96, 2048, True),
             ("SYSU single-shot 3803x301, 2048-d", 3803, 301, 96, 2048, True),
             ("RegDB 2060x2060, 2048-d", 2060, 2060, 206, 2048, False))
    with tempfile.TemporaryDirectory() as tmp:
        for name, n_q, n_g, ids, dims, sysu in cases:
            path = Path(tmp) / "f.npz"
            _write_npz(path, n_q, n_g, ids, dims, sysu)
            protocol = "sysu" if sysu else "regdb"
            t_ref, ref = _process([sys.executable, "-c", REFERENCE_PROCESS, str(path), protocol], 1)
            t_ours, ours = _process([msareid, "evaluate", "--features", str(path), "--protocol", protocol, "--json"],
                                    repeat)
            diff = max(abs(ours[k] - ref[k]) for k in ("rank1", "mAP", "mINP"))
            print(f"  {name:<36} reference-style {t_ref:6.2f}s | msareid evaluate {t_ours:5.2f}s "
                  f"({t_ref / t_ours:5.1f}x) | largest difference of Rank-1/mAP/mINP {diff:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--large", type=int, default=20000)
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--processes", action="store_true", help="also time whole processes (see above)")
    parser.add_argument("--only-processes", action="store_true", help="only the whole-process comparison")
    args = parser.parse_args()
    if args.processes or args.only_processes:
        processes()
    if args.only_processes:
        return
    compare("SYSU single-shot 3803x301 x10", 3803, 301, 96, 10, sysu=True)
    compare("SYSU multi-shot 3803x3010 x10", 3803, 3010, 96, 10, sysu=True)
    compare("RegDB 2060x2060", 2060, 2060, 206, 1, sysu=False)
    if not args.skip_large:
        n = args.large
        result, seconds, peak = timed(evaluate_features, *problem(n, n, n // 10, 0, dims=256),
                                      rules=SysuMM01.rules)
        print(f"large {n}x{n} (256-d)       vectorised {seconds:5.2f}s | peak memory {peak:3.0f} MiB "
              f"(the full distance matrix alone would be {n * n * 4 / 2**20:.0f} MiB); mAP {result.mAP:.4f}")


if __name__ == "__main__":
    main()
