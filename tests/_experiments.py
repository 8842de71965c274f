"""The experiment settings as compositions of ``experiments/{data,model,trainer}/`` pieces, named by their run.

A setting is ``rsmg fit --config DATA --config MODEL --config TRAINER``; its key is the run name it logs under
(``outputs/<key>/version_N``), the name the one-file YAML it replaced used. Tests that fit or parse a shipped
setting take its arguments from here, so a renamed piece breaks one table, not twenty tests.
"""

from __future__ import annotations

from _paths import REPO

EXPERIMENTS = REPO / "experiments"
PAPER_PAIRS = (
    "houston2013_to_muufl",
    "houston2013_to_trento",
    "muufl_to_houston2013",
    "muufl_to_trento",
    "trento_to_houston2013",
    "trento_to_muufl",
)
SETTINGS: dict[str, tuple[str, ...]] = {
    "baseline_trento_to_muufl": (
        "data/trento_to_muufl_lidar.yaml",
        "model/concat_cnn.yaml",
        "trainer/lidar.yaml",
    ),
    "fvmgn_trento_to_muufl_lidar": (
        "data/trento_to_muufl_lidar.yaml",
        "model/fvmgn_lidar.yaml",
        "trainer/lidar.yaml",
    ),
    "fvmgn_houston2013_vectors": (
        "data/houston2013_vectors.yaml",
        "model/fvmgn_houston2013_vectors.yaml",
        "trainer/houston2013_vectors.yaml",
    ),
    "fvmgn_salinas_a": ("data/salinas_a.yaml", "model/fvmgn_salinas_a.yaml", "trainer/salinas_a.yaml"),
    **{
        f"fvmgn_paper_{pair}": (f"data/paper_{pair}.yaml", "model/fvmgn_paper.yaml", "trainer/paper.yaml")
        for pair in PAPER_PAIRS
    },
}


def config_args(setting: str) -> list[str]:
    """``--config PIECE`` for each piece of ``setting``, in order (absolute paths: any cwd)."""
    return [arg for piece in SETTINGS[setting] for arg in ("--config", str(EXPERIMENTS / piece))]


BASELINE = config_args("baseline_trento_to_muufl")  # the concat CNN, Trento -> MUUFL on the real LiDAR
FVMGN_LIDAR = config_args("fvmgn_trento_to_muufl_lidar")  # FVMGN on the same protocol
