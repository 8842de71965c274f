"""Figures of a run: confusion matrices, t-SNE, per-class accuracy, classification maps, attention maps.

Every function is pure: it takes arrays and names, returns a :class:`matplotlib.figure.Figure`, and never
touches the global pyplot state. Figures are built with :class:`~matplotlib.figure.Figure` directly and
rendered by matplotlib's Agg canvas when saved, whatever backend pyplot uses: they work headless, in worker
processes and under DDP, never leak memory through ``plt``'s figure registry, and do not switch a notebook's
inline backend. :func:`save_figure` writes a PNG atomically, like every other output of a run.

Conventions shared by the figures, so a reader can compare them:

* one colour per class, the same in every figure of a run (:func:`class_colors`; greys are never a class
  colour because grey means "no label" in the maps);
* domain names are always spelled out (never ``domain 0``), target domains are marked as such when known;
* accuracies are shown in %, row-normalised confusion matrices read "of the pixels of true class *r*, which
  fraction was predicted as *c*" (recall on the diagonal), the habit of remote-sensing papers.
"""

from rsmg.plotting.accuracy import plot_confusion_matrix, plot_method_comparison, plot_per_class_accuracy
from rsmg.plotting.attention import display_image, plot_attention_maps
from rsmg.plotting.embeddings import plot_tsne, subsample, tsne_2d
from rsmg.plotting.maps import label_map_from_predictions, plot_classification_map
from rsmg.plotting.style import NOT_EVALUATED, UNLABELLED, class_colors, domain_colors, save_figure

__all__ = [
    "NOT_EVALUATED",
    "UNLABELLED",
    "class_colors",
    "display_image",
    "domain_colors",
    "label_map_from_predictions",
    "plot_attention_maps",
    "plot_classification_map",
    "plot_confusion_matrix",
    "plot_method_comparison",
    "plot_per_class_accuracy",
    "plot_tsne",
    "save_figure",
    "subsample",
    "tsne_2d",
]
