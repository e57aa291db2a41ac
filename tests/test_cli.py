import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from msareid.cli import main


def _run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_check_data_sysu_json_schema(synth_sysu: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "check-data", "sysu", "--root", str(synth_sysu), "--json")
    assert code == 0
    s = json.loads(out)
    assert s["dataset"] == "sysu" and set(s) == {"dataset", "train", "test", "valid_query"}
    assert set(s["train"]) == {"ids", "rgb", "ir"} and set(s["test"]) == {"ids", "query", "gallery"}
    for mode in ("all", "indoor"):
        assert set(s["test"]["gallery"][mode]) == {"single", "multi"}
        assert s["test"]["gallery"][mode]["single"] <= s["test"]["gallery"][mode]["multi"]
        assert isinstance(s["valid_query"][mode], int)
    assert s["valid_query"]["indoor"] <= s["valid_query"]["all"] == s["test"]["query"]


def test_check_data_hand_built_tree_counts(sysu_tree: Path, capsys: pytest.CaptureFixture) -> None:
    _, out, _ = _run(capsys, "check-data", "sysu", "--root", str(sysu_tree), "--json", "--verify-images")
    assert json.loads(out) == {
        "dataset": "sysu",
        "train": {"ids": 3, "rgb": 7, "ir": 6},
        "test": {"ids": 3, "query": 8,
                 "gallery": {"all": {"single": 7, "multi": 29}, "indoor": {"single": 3, "multi": 23}}},
        "valid_query": {"all": 8, "indoor": 6},
    }


def test_check_data_regdb_json(synth_regdb: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "check-data", "regdb", "--root", str(synth_regdb), "--trial", "7", "--json")
    assert code == 0 and json.loads(out) == {
        "dataset": "regdb", "trial": 7,
        "train": {"ids": 4, "visible": 12, "thermal": 12},
        "test": {"ids": 4, "visible": 12, "thermal": 12},
    }


def test_human_summary(synth_regdb: Path, capsys: pytest.CaptureFixture) -> None:
    _, out, _ = _run(capsys, "check-data", "regdb", "--root", str(synth_regdb))
    assert "dataset: regdb (trial 1)" in out and "train.visible" in out
    assert "ranking rules regdb; directions visible-to-thermal, thermal-to-visible (first: default)" in out


def test_synth_then_preview(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "synth", "sysu", "--out", str(tmp_path / "s"), "--ids", "8", "--seed", "2",
                        "--rgb-images", "2", "--ir-images", "2")
    assert code == 0 and "8 ids, seed 2" in out
    code, out, _ = _run(capsys, "preview", "sysu", "--root", str(tmp_path / "s"), "--out", str(tmp_path / "p.png"))
    from PIL import Image

    assert code == 0 and Image.open(tmp_path / "p.png").size[0] > 300


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (lambda r: (r / "exp" / "test_id.txt").write_text("a,b\n"),
         "test_id.txt: expected comma-separated integer ids"),
        (lambda r: [p.unlink() for p in (r / "cam2" / "0004").iterdir()], "cam2/0004 holds no images"),
    ],
)
def test_broken_root_exits_2_with_one_line(
    sysu_tree: Path, capsys: pytest.CaptureFixture, breakage, expected: str
) -> None:
    breakage(sysu_tree)
    code, out, err = _run(capsys, "check-data", "sysu", "--root", str(sysu_tree), "--json")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_unreadable_image_with_verify(sysu_tree: Path, capsys: pytest.CaptureFixture) -> None:
    bad = sysu_tree / "cam5" / "0003" / "0001.jpg"
    bad.write_bytes(b"\xff\xd8 broken")
    code, _, err = _run(capsys, "check-data", "sysu", "--root", str(sysu_tree), "--verify-images")
    assert code == 2 and str(bad) in err and err.count("\n") == 1


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    from msareid.errors import UserError

    with pytest.raises(UserError):
        main(["check-data", "sysu", "--root", str(tmp_path / "none"), "--debug"])


def test_config_command_prints_resolved_toml(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "config", "--set", "data.height=64")
    assert code == 0 and "height = 64" in out
    code, _, err = _run(capsys, "config", "--set", "data.colour=1")
    assert code == 2 and "unknown key data.colour" in err


def test_cache_command(synth_sysu: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["cache", "--quiet", "--set", f"data.root={synth_sysu}", "--set", f"data.cache_dir={tmp_path}",
            "--set", "data.height=32", "--set", "data.width=16"]
    code, out, _ = _run(capsys, *args)
    assert code == 0 and out.count(".npy") == 2
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_module_and_console_script_entry_points(synth_regdb: Path) -> None:
    env = dict(os.environ)
    for cmd in ([sys.executable, "-m", "msareid"], [str(Path(sys.executable).with_name("msareid"))]):
        done = subprocess.run(cmd + ["check-data", "regdb", "--root", str(synth_regdb / "missing"), "--json"],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.strip().splitlines() == [
            f"msareid check-data: error: RegDB root {synth_regdb / 'missing'} does not exist or is not a folder"
        ]


def test_profile_matches_the_paper(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = _run(capsys, "profile", "--config", "configs/sysu.toml", "--json")
    assert code == 0
    p = json.loads(out)
    assert set(p) >= {"params", "macs_per_image", "isa_params", "isa_macs_per_image", "input_size", "num_classes"}
    assert p["input_size"] == [288, 144] and p["num_classes"] == 395
    assert round(p["params"] / 1e6, 2) == 24.32  # the paper's model analysis
    assert abs(p["macs_per_image"] - 5.1689e9) / 5.1689e9 < 0.01
    # one ISA module: 3x3 conv + 3x3 transposed conv on 3 channels, with biases
    assert p["isa_params"] == 2 * (3 * 3 * 9 + 3)
    assert p["isa_macs_per_image"] == 2 * 286 * 142 * 3 * 3 * 9


def test_the_command_line_starts_without_torch() -> None:
    """Commands that need no network (evaluate --features, check-data) start in a fraction of a
    second: importing the CLI must not import torch (about 1.5 s)."""
    import subprocess
    import sys

    code = "import sys, msareid.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_evaluating_a_feature_file_does_not_import_torch(tmp_path: Path) -> None:
    """``evaluate --features`` is NumPy work: the whole process stays free of torch (start-up)."""
    import numpy as np

    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, 20)
    np.savez(tmp_path / "f.npz", query_feat=rng.normal(size=(20, 8)), gallery_feat=rng.normal(size=(20, 8)),
             query_pid=ids, gallery_pid=ids, query_cam=np.full(20, 3), gallery_cam=np.ones(20, dtype=int))
    code = ("import sys; from msareid.cli import main; "
            f"rc = main(['evaluate', '--features', {str(tmp_path / 'f.npz')!r}, '--protocol', 'sysu', "
            f"'--out', {str(tmp_path / 'r.json')!r}]); sys.exit(rc or 3 * ('torch' in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    assert (tmp_path / "r.json").is_file()
