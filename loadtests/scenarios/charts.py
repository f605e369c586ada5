"""PNG charts of a locust run from its ``*_stats_history.csv`` (matplotlib, Agg backend):
requests/s, response-time percentiles and users over time; and the soak run's samples."""

from __future__ import annotations

import csv
from pathlib import Path

from loadtests.generator.locust_csv import num
from loadtests.reporting import pyplot

AGGREGATED = "Aggregated"
MAX_NAMED_LINES = 8  # per-request lines on the requests/s chart, when there are this few


def read_history(path: Path) -> dict[str, list[dict[str, str]]]:
    """Rows of a stats history CSV grouped by request name (``Aggregated`` for the total)."""
    rows: dict[str, list[dict[str, str]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("Name") is None:
                continue  # a line cut short by a killed locust
            key = row["Name"] if row["Name"] == AGGREGATED else f"{row['Type']} {row['Name']}"
            rows.setdefault(key, []).append(row)
    return rows


def _figure(plt, title: str, ylabel: str):
    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=110)
    ax.set_title(title, fontsize=13)
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _save(plt, fig, ax, path: Path) -> Path:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=9, framealpha=0.85)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def history_charts(history_csv: Path, title: str, out_dir: Path, stem: str,
                   window: float = 1.0) -> list[Path]:
    """Three PNGs, ``<stem>_rps.png``, ``<stem>_response_times.png`` and ``<stem>_users.png``.
    Returns their paths (none when the history is empty). ``window``: seconds over which
    requests/s is taken (locust workers report every 3 s: use 3 with --processes)."""
    rows = read_history(history_csv)
    total = rows.get(AGGREGATED, [])
    if not total:
        return []
    plt = pyplot()
    t0 = int(total[0]["Timestamp"])

    def xs(series: list[dict[str, str]]) -> list[float]:
        return [int(r["Timestamp"]) - t0 for r in series]

    def rates(series: list[dict[str, str]], column: str) -> tuple[list[float], list[float]]:
        """Per-second rate of a running total over the last ``window`` seconds (locust's own
        Requests/s column is a trailing ~10 s average that smears bursts and ramps)."""
        x = xs(series)
        n = [num(r[column]) or 0.0 for r in series]
        if n and n[0] > 0:  # a request name appears with its first requests already counted
            x, n = [x[0] - 1, *x], [0.0, *n]
        out_x, out_y, j = [], [], 0
        for i in range(1, len(series)):
            while x[i] - x[j] > window:
                j += 1
            if x[i] > x[j]:
                out_x.append(x[i])
                out_y.append(max(0.0, (n[i] - n[j]) / (x[i] - x[j])))
        return out_x, out_y

    out = []
    # Requests/s: the total, failures, and each request name when there are few.
    fig, ax = _figure(plt, f"{title}: requests per second",
                      f"requests/s ({window:g} s window)")
    ax.plot(*rates(total, "Total Request Count"), color="tab:blue", lw=2, label="all requests")
    named = {k: v for k, v in rows.items() if k != AGGREGATED}
    if 1 < len(named) <= MAX_NAMED_LINES:
        for name, series in sorted(named.items()):
            ax.plot(*rates(series, "Total Request Count"), lw=1, alpha=0.8, label=name)
    ax.plot(*rates(total, "Total Failure Count"), color="tab:red", lw=1.5,
            label=f"failures (total {total[-1]['Total Failure Count']})")
    out.append(_save(plt, fig, ax, out_dir / f"{stem}_rps.png"))

    # Response-time percentiles over the last ~10 s window at each point.
    fig, ax = _figure(plt, f"{title}: response times (all requests, 10 s window)",
                      "response time (ms)")
    for column, color in (("50%", "tab:green"), ("95%", "tab:orange"), ("99%", "tab:red")):
        points = [(x, num(r[column])) for x, r in zip(xs(total), total, strict=True)]
        points = [(x, y) for x, y in points if y is not None]
        while points and points[0][1] == 0:  # locust's "current" window before it fills
            points.pop(0)
        if points:
            ax.plot(*zip(*points, strict=True), color=color, lw=1.5, label=f"p{column[:-1]}")
    out.append(_save(plt, fig, ax, out_dir / f"{stem}_response_times.png"))

    fig, ax = _figure(plt, f"{title}: simulated users", "users")
    ax.plot(xs(total), [int(r["User Count"]) for r in total], color="tab:purple", lw=2,
            label="users")
    out.append(_save(plt, fig, ax, out_dir / f"{stem}_users.png"))
    return out


def soak_chart(samples: list[dict[str, float]], warmup_s: float, title: str, path: Path,
               verdicts: list | None = None) -> Path:
    """One PNG, four panels: Redis used_memory, keys, the concert's records, API RSS; the
    warm-up shaded, and the fitted line of the judged part with its verdict. Each panel's
    height spans at least the series' allowed rise, so noise does not look like a slope."""
    plt = pyplot()
    panels = [("redis_used_memory", "Redis used_memory (MiB)", 1 / 2**20),
              ("redis_keys", "Redis keys (DBSIZE)", 1),
              ("concert_records", "concert 2 records (hash + zset entries)", 1),
              ("api_rss", "API RSS (MiB)", 1 / 2**20)]
    panels = [p for p in panels if any(s.get(p[0]) is not None for s in samples)]
    fits = {v.series: v for v in verdicts or []}
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.7 * len(panels)), dpi=110,
                             sharex=True, squeeze=False)
    fig.suptitle(title, fontsize=13)
    for i, (ax, (key, label, scale)) in enumerate(zip(axes[:, 0], panels, strict=True)):
        points = [(s["t"], s[key] * scale) for s in samples if s.get(key) is not None]
        ax.plot(*zip(*points, strict=True), lw=1.5, color="tab:blue", label=label)
        ax.axvspan(0, warmup_s, color="grey", alpha=0.15,
                   label="warm-up (not judged)" if i == 0 else None)
        v = fits.get(key)
        ys = [y for _, y in points]
        lo, hi = min(ys), max(ys)
        if v is not None:
            t0, y0, t1, y1 = v.line
            ax.plot([t0, t1], [y0 * scale, y1 * scale], "--", lw=1.5,
                    color="tab:green" if v.ok else "tab:red",
                    label=f"fit: rise {v.rise * scale:+,.2f} (limit {v.limit * scale:,.2f}) "
                    f"{'ok' if v.ok else 'GROWING'}")
            span = max(hi - lo, 2 * v.limit * scale)
        else:
            span = max(hi - lo, abs(hi) * 0.1, 1e-9)
        mid = (hi + lo) / 2
        ax.set_ylim(max(0.0, mid - 0.6 * span), mid + 0.6 * span)
        ax.set_ylabel(label.split(" (")[0], fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    axes[-1, 0].set_xlabel("time since start (s)")
    axes[-1, 0].set_xlim(left=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
