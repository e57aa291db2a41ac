"""Record the reference runs (``runs.py``): ``python tests/data/reference/record.py``.

Writes ``weights.json`` (each run's weight digests and sums, and the platform they were made on),
``legacy.pt`` (a checkpoint of every network piece, written by this code) and ``legacy.json`` (what
evaluating and resuming that checkpoint give with this code).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs  # noqa: E402


def main() -> None:
    from msareid.data.synthetic import write_sysu

    torch.set_num_threads(1)
    runs.register_micro()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_sysu(Path(tmp) / "sysu", runs.synthetic_spec())
        weights = {}
        for name in runs.RUNS:
            state = runs.train_run(name, root, Path(tmp) / name.replace("+", "p"))
            weights[name] = {"digest": runs.digest(state), "sums": runs.sums(state)}
            print(name, "recorded", flush=True)
        (runs.HERE / "weights.json").write_text(json.dumps(
            {"platform": runs.fingerprint(), "runs": weights}, indent=1, sort_keys=True) + "\n")
        legacy = Path(tmp) / "legacy"
        runs.train_run("legacy", root, legacy)
        shutil.copy(legacy / "run" / "last.pt", runs.HERE / "legacy.pt")
        print("legacy.pt", (runs.HERE / "legacy.pt").stat().st_size, "bytes")
        (runs.HERE / "legacy.json").write_text(json.dumps(legacy_expectations(root, Path(tmp)), indent=1) + "\n")


def legacy_expectations(root: Path, tmp: Path) -> dict:
    """Evaluating ``legacy.pt`` on the synthetic set, and its weights after one more epoch."""
    import dataclasses

    from msareid.engine import train
    from msareid.inference import evaluate_checkpoint, load_trained
    from msareid.recipes import with_overrides

    figures, _ = evaluate_checkpoint(runs.HERE / "legacy.pt", lambda e: dataclasses.replace(e, trials=2),
                                     root=str(root))
    _, config, _ = load_trained(runs.HERE / "legacy.pt")
    out = tmp / "resumed"
    out.mkdir()
    shutil.copy(runs.HERE / "legacy.pt", out / "last.pt")
    config = with_overrides(config, [f'data.root="{root}"', f'data.cache_dir="{tmp / "cache2"}"', "train.epochs=3"])
    train(config, out, resume=True, progress=False)
    state = torch.load(out / "last.pt", weights_only=True)["model"]
    keep = ("feature", "mAP", "rank1", "mINP", "protocol")
    return {"evaluation": {k: figures[k] for k in keep}, "resumed": {"digest": runs.digest(state),
                                                                     "sums": runs.sums(state)}}


if __name__ == "__main__":
    main()
