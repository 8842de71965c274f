"""rsmg: remote-sensing multimodality generalisation.

Importing ``rsmg`` is cheap on purpose: it pulls in no diffusers, wandb, transformers or open_clip. Those are
imported inside the functions that need them, so ``python -c "import rsmg"`` works on a login node and never
touches the network.
"""

from rsmg.errors import ConfigError, DataError, RsmgError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DataError", "RsmgError", "__version__"]
