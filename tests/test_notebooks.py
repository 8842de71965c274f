"""The notebooks run top to bottom: two on the outputs of a tiny real fit + test, one on the real LiDAR."""

import json

import pytest

from _paths import REPO, SHARED_DATA
from test_wandb_offline import tiny_tracked_run

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = REPO / "notebooks"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SHARED_DATA.exists(), reason="shared data pack missing"),
]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """The tiny run (shared with test_wandb_offline) and an `rsmg report` of it."""
    from rsmg import report

    root, run, _ = tiny_tracked_run(tmp_path_factory)
    assert report.main([str(root / "outputs"), "--out", str(root / "report")]) == 0
    return root, run


def _execute(name, cwd, monkeypatch, **env):
    for k, v in env.items():
        monkeypatch.setenv(k, str(v))  # the kernel inherits the test's environment
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return nb


def _outputs(nb, kind):
    return [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if kind in o.get("data", {})
    ]


@pytest.mark.parametrize("name", ["01_explore_embeddings.ipynb", "02_results.ipynb", "03_fvmgn_parts.ipynb"])
def test_notebook_is_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: strip the outputs"


def test_explore_embeddings_notebook(outputs, monkeypatch):
    root, run = outputs
    nb = _execute(
        "01_explore_embeddings.ipynb",
        root,
        monkeypatch,
        RSMG_EMBEDDINGS=run / "embeddings.npz",
        RSMG_TSNE_POINTS=400,
    )
    images = _outputs(nb, "image/png")
    assert len(images) == 3  # t-SNE of `fused` and `lidar`, cross-domain neighbour bars
    tables = "".join(o["data"]["text/plain"] for o in _outputs(nb, "text/html"))
    assert "source_val" in tables and "1-NN same class %" in tables and "trento" in tables


def test_results_notebook(outputs, monkeypatch):
    root, run = outputs
    nb = _execute("02_results.ipynb", root, monkeypatch, RSMG_REPORT_DIR=root / "report", RSMG_RUN_DIR=run)
    md = "".join(o["data"]["text/markdown"] for o in _outputs(nb, "text/markdown"))
    assert "| ConcatCNN |" in md and "map_muufl.png" in md
    rep = json.loads((root / "report" / "report.json").read_text())
    assert list(rep["rows"]) == ["ConcatCNN"]
    assert len(_outputs(nb, "image/png")) >= 4  # comparison, per-class bars, map, confusion matrix


def test_fvmgn_parts_notebook(tmp_path, monkeypatch):
    nb = _execute(
        "03_fvmgn_parts.ipynb",
        tmp_path,
        monkeypatch,
        RSMG_DATA_ROOT=SHARED_DATA,
        RSMG_NB_PATCHES_PER_CLASS=20,
    )
    assert len(_outputs(nb, "image/png")) == 2  # resampled patches, text-similarity heat maps
    text = "".join(o["data"]["text/plain"] for o in _outputs(nb, "text/plain"))
    assert "donor of another class %" in text and "shared vs own LiDAR text" in text
    streams = "".join(
        o.get("text", "") for c in nb.cells for o in c.get("outputs", []) if o.get("name") == "stdout"
    )
    assert "Trento: 80 training patches, MUUFL: 80 test patches" in streams
