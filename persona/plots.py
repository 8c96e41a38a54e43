"""PNG charts for people who would rather look than read: loss curves, base-vs-persona pass rates,
benchmark bars. matplotlib is imported lazily and headless (Agg), so importing this module is free."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def line_chart(path: Path, series: dict[str, list[tuple[float, float]]], *, title: str,
               xlabel: str, ylabel: str) -> Path:
    """One line per named series of (x, y) points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, points in series.items():
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="." if len(points) < 60 else None, label=name)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    if len(series) > 1:
        ax.legend()
    return _save(fig, path)


def grouped_bars(path: Path, groups: list[str], series: dict[str, list[float]], *, title: str,
                 ylabel: str, ymax: float | None = None, value_format: str = "{:.0%}") -> Path:
    """Side-by-side bars: one group per category, one bar per named series (e.g. base vs persona)."""
    plt = _pyplot()
    bars = len(groups) * max(1, len(series))
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.45 * bars + 2)), 4.5))
    width = 0.8 / max(1, len(series))
    for index, (name, values) in enumerate(series.items()):
        xs = [g + (index - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, labels=[value_format.format(v) for v in values], fontsize=8)
    ax.set_xticks(range(len(groups)), groups, rotation=20, ha="right")
    ax.set(title=title, ylabel=ylabel)
    if ymax is not None:
        ax.set_ylim(0, ymax)
    ax.legend()
    return _save(fig, path)
