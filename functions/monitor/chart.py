"""The drift report's PNG: a horizontal bar chart of the most drifted features, with the alarm threshold.

matplotlib is imported on first use (it costs about a second of cold start, and runs without a chart skip it),
and drawn with the Agg canvas directly: no pyplot global state, no GUI backend, nothing written to disk. Set
``MPLCONFIGDIR`` to a writable directory (``/tmp`` in Lambda) for its font cache.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

DEFAULT_LIMIT = 15
_ABOVE = "#c0392b"
_BELOW = "#2e86c1"


def drift_chart(
    ranked: Sequence[tuple[str, float]], *, threshold: float, title: str, limit: int = DEFAULT_LIMIT
) -> bytes:
    """PNG bytes: one bar per feature (at most ``limit``, the largest first from the top), red above ``threshold``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    shown = list(ranked[:limit])
    names = [name for name, _ in reversed(shown)]
    values = [value for _, value in reversed(shown)]
    figure = Figure(figsize=(8, 1.5 + 0.4 * max(len(shown), 1)), dpi=100)
    FigureCanvasAgg(figure)  # attaches itself: savefig renders with Agg
    axes = figure.add_subplot()
    axes.barh(names, values, color=[_ABOVE if value > threshold else _BELOW for value in values])
    axes.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"alarm threshold {threshold:g}")
    axes.set_xlabel("population stability index (PSI)")
    axes.set_title(title, fontsize=10)
    axes.legend(loc="best", fontsize=8)
    if not shown:
        axes.text(0.5, 0.5, "no feature drift measured", transform=axes.transAxes, ha="center", va="center")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
