"""Handler of ``msareid evaluate``: precomputed features (npz) or the authors' official files."""

from __future__ import annotations

import argparse
import json

from msareid.argtypes import positive_int
from msareid.errors import UserError
from msareid.eval.protocols import EvalResult


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid evaluate``."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", metavar="FILE.npz",
                        help="query_feat, gallery_feat, query_pid, gallery_pid, query_cam, gallery_cam")
    source.add_argument("--official-sysu", metavar="DIR", help="folder of NAME_cam<c>.mat feature files")
    source.add_argument("--checkpoint", metavar="CKPT", help="a trained model (e.g. RUN_DIR/last.pt)")
    p.add_argument("--dataset", choices=("sysu", "regdb", "manifest", "synthetic"),
                   help="--checkpoint: dataset (default: the run's data.name)")
    p.add_argument("--root", help="--checkpoint: dataset root, the CSV for manifest (default: the run's data.root)")
    p.add_argument("--sampler", choices=("agw", "official"), help="SYSU-MM01 gallery sampler (default agw)")
    p.add_argument("--direction", choices=("visible-to-thermal", "thermal-to-visible"),
                   help="RegDB search direction (default visible-to-thermal; the model's own trial is used)")
    p.add_argument("--flip", action="store_true", default=None,
                   help="average the features of each image and its mirror")
    p.add_argument("--batch-size", type=positive_int, help="images a batch (default 64)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON result to this file")
    p.add_argument("--protocol", choices=("sysu", "regdb"), help="rules for --features (CMC form, camera rule)")
    p.add_argument("--name", help="--official-sysu: the NAME of NAME_cam<c>.mat")
    p.add_argument("--perm", metavar="rand_perm_cam.mat", help="the authors' permutations (official sampler)")
    p.add_argument("--test-ids", metavar="test_id.mat", help="--official-sysu: the authors' test ids")
    p.add_argument("--mode", choices=("all", "indoor"), help="SYSU-MM01 search mode (default all)")
    p.add_argument("--shots", type=int, choices=(1, 10), help="SYSU-MM01 gallery: 1 or 10 per camera (default 1)")
    p.add_argument("--trials", type=positive_int, help="SYSU-MM01 trials / official runs (default 10)")
    p.add_argument("--metric", choices=("cosine", "euclidean"),
                   help="cosine L2-normalises features first (default); euclidean uses them as they are")
    p.add_argument("--rerank", action="store_true", default=None, help="k-reciprocal re-ranking (named in the results)")
    p.add_argument("--k1", type=int, help="re-ranking k1 (default 20)")
    p.add_argument("--k2", type=int, help="re-ranking k2 (default 6)")
    p.add_argument("--lambda-value", type=float, help="re-ranking lambda (default 0.3)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


# Options that override the protocol: with --checkpoint, those not given keep the run's own [eval];
# with --features / --official-sysu, those not given take the defaults of EvalConfig.
_PROTOCOL_OPTIONS = ("mode", "shots", "trials", "sampler", "perm", "direction", "flip", "metric", "batch_size",
                     "rerank", "k1", "k2", "lambda_value")


def _protocol_args(args: argparse.Namespace, base: object) -> dict[str, object]:
    return {k: (getattr(args, k) if getattr(args, k) is not None else getattr(base, k)) for k in _PROTOCOL_OPTIONS}


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msareid.config import EvalConfig
    from msareid.eval import feature_files as ff

    if args.checkpoint:
        return _evaluate_checkpoint(args)
    for k, v in _protocol_args(args, EvalConfig()).items():
        setattr(args, k, v)
    if args.features:
        if not args.protocol:
            raise UserError("--features needs --protocol sysu or --protocol regdb")
        from msareid.eval.driver import Rerank

        rerank = Rerank(args.k1, args.k2, args.lambda_value) if args.rerank else None
        result = ff.evaluate_npz(ff.load_feature_npz(args.features), args.protocol, args.metric, rerank)
        per_run = False
    else:
        from msareid.data.sysu_official import RandPerm, load_test_ids
        from msareid.eval.protocols import SysuProtocol

        missing = [flag for flag, v in (("--name", args.name), ("--perm", args.perm), ("--test-ids", args.test_ids))
                   if not v]
        if missing:
            raise UserError(f"--official-sysu needs {', '.join(missing)}")
        if not 1 <= args.trials <= 10:
            raise UserError(f"--trials must be 1..10, got {args.trials}")
        protocol = SysuProtocol(args.mode, args.shots, args.trials, "official")
        result = ff.evaluate_official(ff.OfficialFeatures(args.official_sysu, args.name), RandPerm.load(args.perm),
                                      load_test_ids(args.test_ids), protocol, args.metric)
        per_run = True
    _require_valid_queries(result)
    if args.out:
        from msareid.training.checkpoint import save_json

        save_json(result.as_dict(per_run=per_run), args.out)
    print(json.dumps(result.as_dict(per_run=per_run)) if args.json else result.table())
    return 0


def _require_valid_queries(result: EvalResult) -> None:
    """No query with a true match in its gallery means no figure at all, not zeros."""
    if all(run.valid_queries == 0 for run in result.runs):
        raise UserError(f"{result.protocol}: no query has a true match in its gallery (query and gallery "
                        "share no identity, or the camera rule removes every match); check the ids and cameras")


def _evaluate_checkpoint(args: argparse.Namespace) -> int:
    import dataclasses

    from msareid import threads
    from msareid.engine import load_trained
    from msareid.inference import evaluate_model
    from msareid.training.checkpoint import save_json
    from msareid.training.distributed import resolve_device

    threads.configure()
    device = resolve_device(args.device)
    model, config, _ = load_trained(args.checkpoint, device)
    dataset = args.dataset or config.data.name
    root = args.root or config.data.root
    if not root:
        raise UserError(f"{args.checkpoint}: its config has no data.root; pass --root")
    config = dataclasses.replace(config, eval=dataclasses.replace(config.eval, **_protocol_args(args, config.eval)))
    results = evaluate_model(model, config, dataset, root, device, progress=not args.json)
    _require_valid_queries(results["bnneck"])
    out = {**results["bnneck"].as_dict(per_run=False), "pooled": results["pooled"].as_dict(per_run=False),
           "checkpoint": str(args.checkpoint)}
    if args.out:
        save_json(out, args.out)
    if args.json:
        print(json.dumps(out))
    else:
        print("BNNeck feature (headline):\n" + results["bnneck"].table())
        print("pooled feature:\n" + results["pooled"].table())
    return 0
