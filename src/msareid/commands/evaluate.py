"""Handler of ``msareid evaluate``: precomputed features (npz) or the authors' official files."""

from __future__ import annotations

import argparse
import json

from msareid.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``msareid evaluate``."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--features", metavar="FILE.npz",
                        help="query_feat, gallery_feat, query_pid, gallery_pid, query_cam, gallery_cam")
    source.add_argument("--official-sysu", metavar="DIR", help="folder of NAME_cam<c>.mat feature files")
    p.add_argument("--protocol", choices=("sysu", "regdb"), help="rules for --features (CMC form, camera rule)")
    p.add_argument("--name", help="--official-sysu: the NAME of NAME_cam<c>.mat")
    p.add_argument("--perm", metavar="rand_perm_cam.mat", help="--official-sysu: the authors' permutations")
    p.add_argument("--test-ids", metavar="test_id.mat", help="--official-sysu: the authors' test ids")
    p.add_argument("--mode", choices=("all", "indoor"), default="all", help="SYSU-MM01 search mode")
    p.add_argument("--shots", type=int, choices=(1, 10), default=1, help="SYSU-MM01 gallery: 1 or 10 per camera")
    p.add_argument("--trials", type=int, default=10, help="SYSU-MM01 trials / official runs (default 10)")
    p.add_argument("--metric", choices=("cosine", "euclidean"), default="cosine",
                   help="cosine L2-normalises features first (default); euclidean uses them as they are")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from msareid.eval import feature_files as ff

    if args.features:
        if not args.protocol:
            raise UserError("--features needs --protocol sysu or --protocol regdb")
        result = ff.evaluate_npz(ff.load_feature_npz(args.features), args.protocol, args.metric)
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
    print(json.dumps(result.as_dict(per_run=per_run)) if args.json else result.table())
    return 0
