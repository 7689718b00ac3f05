"""A self-contained HTML page for runtime reports: inline CSS and SVG, no scripts, no network.

Per target: the verdict, the fp32 / fp16 / autocast / bf16 comparison, a per-layer chart of
max |activation| on a log scale against the 65504 line, places worst first, parameter dtypes,
gradients and the recommendation; then the join with static findings when there is one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from .records import AT_RISK, CONFIRMED, FP16_MAX, NOT_OBSERVED, NOT_REACHED, POISONED, RUN_FP32
from .report import Report, fmt_headroom, fmt_max, fmt_num, fmt_pct, short_path, weights_line

RUN_COLORS = {
    "fp32": "#6b7280",
    "fp16": "#2563eb",
    "autocast-fp16": "#059669",
    "bf16": "#9333ea",
}
VERDICT_CLASS = {
    CONFIRMED: "v-conf",
    AT_RISK: "v-risk",
    POISONED: "v-poison",
    NOT_OBSERVED: "v-ok",
    NOT_REACHED: "v-nr",
}

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#111827;background:#f9fafb}
h1{font-size:22px;margin:0 0 12px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}
section.target{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:0 0 24px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}
th,td{border-bottom:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.nw{white-space:nowrap}
td.why{min-width:260px;max-width:460px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:12px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap}
.v-conf{background:#fee2e2;color:#991b1b}
.v-risk{background:#fef3c7;color:#92400e}
.v-ok{background:#dcfce7;color:#166534}
.v-nr{background:#e5e7eb;color:#374151}
.note{background:#fffbeb;border-left:4px solid #f59e0b;padding:6px 10px;margin:8px 0;font-size:13px}
.error{background:#fef2f2;border-left:4px solid #dc2626;padding:6px 10px;margin:8px 0}
.rec{background:#eff6ff;border-left:4px solid #2563eb;padding:8px 12px;margin:10px 0}
.meta{color:#4b5563;font-size:13px;margin:2px 0}
.chart,.scroll{overflow-x:auto;max-width:100%}
section.target{min-width:0;overflow:hidden}
.v-poison{background:#ede9fe;color:#5b21b6}
.legend{font-size:12px;color:#374151;display:flex;flex-wrap:wrap;gap:14px;margin:4px 0}
.legend span{display:inline-flex;align-items:center;gap:4px}
.banner{border-radius:8px;padding:12px 16px;margin:0 0 18px;border:2px solid #d1d5db;background:#fff}
.banner h1{margin:0 0 8px}
.banner .row{display:flex;gap:12px;align-items:baseline;margin:4px 0;font-size:15px}
.banner .big{font-size:16px;font-weight:700;padding:2px 12px;border-radius:6px;white-space:nowrap}
.banner .change{font-family:ui-monospace,Menlo,monospace;font-size:13px}
svg text{font-family:system-ui,sans-serif}
"""


def _badge(verdict: str, text: str | None = None) -> str:
    return (
        f'<span class="badge {VERDICT_CLASS.get(verdict, "v-nr")}">{escape(text or verdict)}</span>'
    )


def _chart_series(
    report: Report, kind: str = "module"
) -> tuple[list[str], dict[str, list[float | None]], int]:
    """Leaf-module calls (or op calls) of the prepared run in execution order, and each run's
    max |x| there (inf where the output held inf, 0 where it was all zeros, None: did not run)."""
    base = report.runs.get(report.prepared) or report.runs.get(RUN_FP32)
    if kind == "module":
        layers = (
            sorted((m for m in base.modules if m.is_leaf), key=lambda m: m.order) if base else []
        )
        keys: list[tuple] = [(m.qualname, m.call_index) for m in layers]
        labels = [q + (f" #{c}" if c else "") for q, c in keys]
    else:
        keys = [(o.file, o.line, o.op, o.occurrence) for o in (base.ops if base else [])]
        labels = [
            f"{short_path(f).rsplit('/', 1)[-1]}:{ln} {op}" + (f" #{c}" if c else "")
            for f, ln, op, c in keys
        ]
    index = {k: i for i, k in enumerate(keys)}
    series: dict[str, list[float | None]] = {}
    for name in report.run_names():
        vals: list[float | None] = [None] * len(keys)
        run = report.runs[name]
        records = run.modules if kind == "module" else run.ops
        for m in records:
            k = (
                (m.qualname, m.call_index)
                if kind == "module"
                else (m.file, m.line, m.op, m.occurrence)
            )
            i = index.get(k)
            if i is not None:
                vals[i] = _point(m)
        series[name] = vals
    bins = 1
    if len(keys) > 300:
        bins = math.ceil(len(keys) / 300)
        n_b = math.ceil(len(keys) / bins)
        for name, vals in series.items():
            binned: list[float | None] = []
            for b in range(n_b):
                chunk = [v for v in vals[b * bins : (b + 1) * bins] if v is not None]
                binned.append(max(chunk) if chunk else None)
            series[name] = binned
        labels = [f"{labels[b * bins]} (+{bins - 1})" for b in range(n_b)]
    return labels, series, bins


def _point(m) -> float:
    """A record as one chart value: inf where inf was made, NaN where NaN was made, -inf where
    inf/NaN only passed through (poisoned), else max |x| (0 for an all-zero output)."""
    if m.inf_created:
        return math.inf
    if m.nan_created:
        return math.nan
    if m.n_inf or m.n_nan:
        return -math.inf
    return m.max_abs or 0.0


def _chart(report: Report, kind: str = "module") -> str:
    labels, series, bins = _chart_series(report, kind)
    n = len(labels)
    what = "leaf-module calls" if kind == "module" else "calls of ops of interest"
    if n == 0:
        return f'<p class="meta">no {what} recorded</p>'
    finite = [
        v for vals in series.values() for v in vals if v is not None and math.isfinite(v) and v > 0
    ]
    lo = math.floor(math.log10(min(finite))) if finite else -2
    hi = math.ceil(math.log10(max(finite))) if finite else 5
    lo = max(min(lo, -1), -12)
    hi = max(hi, 6)
    shown = [lab if len(lab) <= 34 else "…" + lab[-33:] for lab in labels]
    longest = max(len(lab) for lab in shown)
    w_plot = max(640, min(1400, 8 * n))
    left, right, top = 70, 150, 52
    ph = 300
    zero_band = 30  # below the log axis: calls whose output was all zeros
    bottom = zero_band + 24 + int(5.6 * longest * 0.87)
    width, height = left + w_plot + right, top + ph + bottom
    inf_y = top - 12
    zero_y = top + ph + zero_band / 2

    def x_of(i: int) -> float:
        return left + (w_plot * (i + 0.5) / n)

    def y_of(v: float) -> float:
        if math.isinf(v) or math.isnan(v):
            return inf_y
        if v <= 0:
            return zero_y
        lv = math.log10(max(v, 10.0**lo))
        return top + ph - (lv - lo) / (hi - lo) * ph

    out = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="max |activation| per layer">'
    ]
    out.append(
        f'<rect x="{left}" y="{top}" width="{w_plot}" height="{ph}" fill="#ffffff" stroke="#d1d5db"/>'
    )
    out.append(
        f'<rect x="{left}" y="{top + ph}" width="{w_plot}" height="{zero_band}" fill="#f3f4f6" stroke="#d1d5db"/>'
    )
    out.append(
        f'<text x="{left - 6}" y="{zero_y + 4:.1f}" font-size="11" text-anchor="end" fill="#6b7280">0</text>'
    )
    for e in range(lo, hi + 1):
        y = y_of(10.0**e)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + w_plot}" y2="{y:.1f}" stroke="#f3f4f6"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" fill="#6b7280">1e{e}</text>'
        )
    y_lim = y_of(FP16_MAX)
    y_risk = y_of(report.thresholds.risk_level)
    out.append(
        f'<rect x="{left}" y="{y_lim:.1f}" width="{w_plot}" height="{y_risk - y_lim:.1f}" fill="#fef3c7" '
        f'opacity="0.7"/>'
    )
    out.append(
        f'<rect x="{left}" y="{top}" width="{w_plot}" height="{y_lim - top:.1f}" fill="#fee2e2" opacity="0.5"/>'
    )
    out.append(
        f'<line x1="{left}" y1="{y_lim:.1f}" x2="{left + w_plot}" y2="{y_lim:.1f}" stroke="#dc2626" '
        f'stroke-width="2"/>'
    )
    out.append(
        f'<text x="{left + w_plot + 6}" y="{y_lim + 4:.1f}" font-size="12" fill="#dc2626">fp16 max 65504</text>'
    )
    out.append(
        f'<line x1="{left}" y1="{y_risk:.1f}" x2="{left + w_plot}" y2="{y_risk:.1f}" stroke="#f59e0b" '
        f'stroke-dasharray="5,4"/>'
    )
    out.append(
        f'<text x="{left + w_plot + 6}" y="{y_risk + 4:.1f}" font-size="12" fill="#b45309">'
        f"{report.thresholds.risk_factor:g}x headroom</text>"
    )
    out.append(
        f'<text x="{left + w_plot + 6}" y="{inf_y + 4}" font-size="12" fill="#dc2626">inf / NaN</text>'
    )
    out.append(
        f'<text x="{left + w_plot + 6}" y="{zero_y + 4:.1f}" font-size="12" fill="#6b7280">all zeros</text>'
    )
    mid = top + ph / 2
    out.append(
        f'<text x="18" y="{mid:.1f}" font-size="12" fill="#374151" transform="rotate(-90 18 {mid:.1f})" '
        f'text-anchor="middle">max |activation| (log scale)</text>'
    )
    step = max(1, math.ceil(n / 60))
    ly0 = top + ph + zero_band + 10
    for i in range(0, n, step):
        x = x_of(i)
        out.append(
            f'<text x="{x:.1f}" y="{ly0}" font-size="10" fill="#374151" '
            f'transform="rotate(60 {x:.1f} {ly0})">{escape(shown[i])}</text>'
        )
    # the prepared run last, on top; wider, hollow markers underneath
    order = [r for r in series if r != report.prepared] + (
        [report.prepared] if report.prepared in series else []
    )
    for name in order:
        vals = series[name]
        color = RUN_COLORS.get(name, "#111827")
        last = name == report.prepared
        dash = f' stroke-dasharray="{RUN_DASHES[name]}"' if RUN_DASHES.get(name) else ""
        width_line = 2.2 if last else 1.6
        seg: list[str] = []
        for i, v in enumerate([*vals, None]):
            if v is None or not math.isfinite(v):
                if len(seg) > 1:
                    out.append(
                        f'<polyline fill="none" stroke="{color}" stroke-width="{width_line}"{dash} '
                        f'opacity="{1.0 if last else 0.8}" points="{" ".join(seg)}"/>'
                    )
                seg = []
                continue
            seg.append(f"{x_of(i):.1f},{y_of(v):.1f}")
        for i, v in enumerate(vals):
            if v is None:
                continue
            x, y = x_of(i), y_of(v)
            if not math.isfinite(v):
                state = "inf created" if v == math.inf else "NaN created"
                if v == -math.inf:
                    state = "poisoned (inf/NaN from upstream)"
                out.append(
                    f"<g><title>{escape(f'{labels[i]} [{name}]: {state}')}</title>"
                    + _state_mark(x, y, v, color)
                    + "</g>"
                )
                continue
            hr = fmt_headroom(FP16_MAX / v) if v > 0 else "unbounded"
            tip = f"{labels[i]} [{name}]: max |x| {fmt_num(v)}; headroom {hr}"
            out.append(
                f"<g><title>{escape(tip)}</title>"
                + _marker(RUN_MARKERS.get(name, "circle"), x, y, color, filled=last)
                + "</g>"
            )
    for s_i, name in enumerate(series):
        color = RUN_COLORS.get(name, "#111827")
        dash = f' stroke-dasharray="{RUN_DASHES[name]}"' if RUN_DASHES.get(name) else ""
        lx = left + 200 * s_i
        out.append(
            f'<line x1="{lx}" y1="14" x2="{lx + 24}" y2="14" stroke="{color}" stroke-width="2.5"{dash}/>'
            + _marker(RUN_MARKERS.get(name, "circle"), lx + 12, 14, color, filled=True)
        )
        label = name + (" (as prepared)" if name == report.prepared else "")
        out.append(
            f'<text x="{lx + 30}" y="18" font-size="12" fill="#111827">{escape(label)}</text>'
        )
    out.append("</svg>")
    note = f'<p class="meta">{n} {what} in execution order'
    if bins > 1:
        note += f" (each point the max of {bins} calls)"
    note += (
        "; hover a point for its figures. Above the red line fp16 overflows; the grey band at the "
        "bottom holds outputs that were all zeros.</p>"
    )
    return '<div class="chart">' + "".join(out) + "</div>" + _legend() + note


RUN_DASHES = {"fp32": "7,4", "autocast-fp16": "2,3", "bf16": "9,3,2,3"}
RUN_MARKERS = {"fp32": "circle", "fp16": "dot", "autocast-fp16": "square", "bf16": "triangle"}


def _marker(shape: str, x: float, y: float, color: str, filled: bool = False) -> str:
    """One run's point: a shape per run, so that coinciding lines stay distinguishable."""
    fill = color if filled or shape == "dot" else "#ffffff"
    if shape == "square":
        return (
            f'<rect x="{x - 3.5:.1f}" y="{y - 3.5:.1f}" width="7" height="7" fill="{fill}" '
            f'stroke="{color}" stroke-width="1.4"/>'
        )
    if shape == "triangle":
        return (
            f'<path d="M{x:.1f},{y - 4.5:.1f} l4.5,8 h-9 z" fill="{fill}" stroke="{color}" '
            'stroke-width="1.4"/>'
        )
    r = 3.0 if shape == "dot" else 6.0
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{fill}" stroke="{color}" '
        'stroke-width="1.4"/>'
    )


def _state_mark(x: float, y: float, v: float, color: str) -> str:
    """inf created: a cross; NaN created: a diamond; poisoned (inherited): a hollow ring."""
    if v == math.inf:
        return (
            f'<path d="M{x - 5:.1f},{y - 5:.1f} l10,10 m0,-10 l-10,10" stroke="{color}" '
            'stroke-width="2.4"/>'
        )
    if math.isnan(v):
        return (
            f'<path d="M{x:.1f},{y - 6:.1f} l6,6 l-6,6 l-6,-6 z" fill="{color}" stroke="#111827" '
            'stroke-width="0.8"/>'
        )
    return (
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="{color}" '
        'stroke-width="1.6" stroke-dasharray="2,2"/>'
    )


def _legend() -> str:
    # text symbols, not SVG: the page's only pictures are its two charts
    items = [
        ("✕", "#dc2626", "inf created here"),
        ("◆", "#dc2626", "NaN created here"),
        ("◌", "#6b7280", "poisoned: inf/NaN from upstream"),
        *((RUN_SYMBOLS[r], RUN_COLORS[r], r) for r in RUN_MARKERS),
    ]
    return (
        '<p class="legend">'
        + "".join(
            f'<span><b style="color:{color};font-size:15px">{mark}</b>{escape(text)}</span>'
            for mark, color, text in items
        )
        + "</p>"
    )


RUN_SYMBOLS = {"fp32": "○", "fp16": "●", "autocast-fp16": "■", "bf16": "▲"}


def _runs_table(report: Report) -> str:
    rows = [
        "<tr><th>run</th><th>how</th><th>max |x|</th><th>headroom</th><th>inf / NaN out</th>"
        "<th>clamped</th><th>error vs fp32</th><th>cosine</th><th>time</th><th>verdict</th><th>why</th></tr>"
    ]
    for name in report.run_names():
        rec = report.runs[name]
        v, reasons = report.run_verdict(name)
        out = rec.output
        cells = [
            f"<td><b>{escape(name)}</b>{' (as prepared)' if name == report.prepared else ''}</td>",
            f"<td>{escape(rec.label)}</td>",
        ]
        if rec.error or out is None:
            cells += ['<td class="n">-</td>'] * 6
        else:
            cells += [
                f'<td class="n">{fmt_max(out.max_abs, out.n_inf, out.n_nan)}</td>',
                f'<td class="n">{fmt_headroom(out.headroom)}</td>',
                f'<td class="n">{out.n_inf} / {out.n_nan}</td>',
                f'<td class="n">{out.clamped}</td>',
                f'<td class="n">{fmt_pct(out.rel_error) if name != RUN_FP32 else "-"}</td>',
                f'<td class="n">{f"{out.cosine:.6f}" if out.cosine is not None else "-"}</td>',
            ]
        cells.append(f'<td class="n">{rec.duration_s:.3f}s</td>')
        cells.append(
            f"<td>{_badge(v, 'reference' if name == RUN_FP32 and not rec.error else None)}</td>"
        )
        why = "; ".join(reasons)
        if rec.error:
            why = f"raised: {rec.error}"
        cells.append(f"<td>{escape(why)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return '<div class="scroll"><table>' + "".join(rows) + "</table></div>"


def _max_cell(fig) -> str:
    return "-" if fig is None else fig.max_text


def _places_table(report: Report, limit: int = 60) -> str:
    run = report.prepared
    places = [p for p in report.sorted_places(run) if p.shown(run)]
    places = places[:limit]
    runs = report.run_names()
    head = (
        "<tr><th>verdict</th><th>where</th><th>op / module</th><th>why</th><th>dtype</th><th>calls</th>"
        + "".join(
            f"<th>max |x| {'<u>' if r == run else ''}{escape(r)}{'</u>' if r == run else ''}</th>"
            for r in runs
        )
        + "<th>headroom</th><th>inf</th><th>NaN</th><th>clamped</th>"
        "<th>error here</th><th>error vs fp32</th><th>underflow</th></tr>"
    )
    rows = [head]
    for pl in places:
        fig = pl.runs[run]
        cells = [
            f"<td>{_badge(fig.verdict)}</td>",
            f'<td class="nw"><code>{escape(pl.where)}</code></td>',
            f"<td><code>{escape(pl.what)}</code></td>",
            f'<td class="why">{escape("; ".join(fig.reasons))}</td>',
            f"<td>{escape(', '.join(fig.dtypes))}</td>",
            f'<td class="n">{fig.calls}</td>',
        ]
        cells += [f'<td class="n">{_max_cell(pl.runs.get(r))}</td>' for r in runs]
        cells += [
            f'<td class="n">{fmt_headroom(fig.headroom)}</td>',
            f'<td class="n">{fig.inf_created}</td>',
            f'<td class="n">{fig.nan_created}</td>',
            f'<td class="n">{fig.clamped}</td>',
            f'<td class="n">{fmt_pct(fig.local_rel_error)}</td>',
            f'<td class="n">{fmt_pct(fig.rel_error)}</td>',
            f'<td class="n">{fmt_pct(fig.local_underflow if pl.kind == "op" else fig.underflow)}</td>',
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = (
        f'<p class="meta">{len(places)} of {len([p for p in report.places() if p.shown(run)])} op sites and '
        "modules; error here: against the same op recomputed in fp32 on its own inputs (ops) or "
        "made inside the module; error vs fp32: against the fp32 run at the same call.</p>"
    )
    return '<div class="scroll"><table>' + "".join(rows) + "</table></div>" + note


def _dtypes_table(report: Report) -> str:
    rows = ["<tr><th>run</th><th>parameters</th><th>not the main dtype</th><th>buffers</th></tr>"]
    for name in report.run_names():
        rec = report.runs[name]
        counts = rec.dtype_counts("params")
        if not counts:
            continue
        main = max(counts, key=counts.get)
        odd = [f"{n} ({dt})" for n, dt in rec.params.items() if dt != main]
        odd_text = ", ".join(odd[:12]) + (f" … +{len(odd) - 12}" if len(odd) > 12 else "")
        b = rec.dtype_counts("buffers")
        rows.append(
            f"<tr><td><b>{escape(name)}</b></td><td>{escape(', '.join(f'{d}: {c}' for d, c in counts.items()))}</td>"
            f"<td><code>{escape(odd_text) or '-'}</code></td>"
            f"<td>{escape(', '.join(f'{d}: {c}' for d, c in b.items())) or '-'}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _grads_table(report: Report) -> str:
    rows = []
    for name in report.run_names():
        g = report.runs[name].grads
        if g is None:
            continue
        rows.append(
            f"<tr><td><b>{escape(name)}</b></td><td class='n'>{g.n_params}</td>"
            f"<td class='n'>{fmt_pct(g.underflow)}</td><td class='n'>{fmt_pct(g.below_fp16_subnormal)}</td>"
            f"<td class='n'>{fmt_pct(g.below_fp16_normal)}</td><td class='n'>{g.n_inf} / {g.n_nan}</td>"
            f"<td>{'yes' if g.gradscaler_needed else 'no'}</td><td>{escape(g.note or '')}</td></tr>"
        )
    if not rows:
        return ""
    head = (
        "<tr><th>run</th><th>params</th><th>underflow vs fp32</th><th>below fp16 subnormal</th>"
        "<th>below fp16 normal</th><th>inf / NaN</th><th>GradScaler needed</th><th>note</th></tr>"
    )
    return "<h3>Gradients (sum loss)</h3><table>" + head + "".join(rows) + "</table>"


def _target_section(report: Report) -> str:
    parts = ['<section class="target">']
    verdict = report.verdict if not report.error else NOT_REACHED
    parts.append(
        f"<h2>{escape(report.name)} {_badge(verdict, 'error' if report.error else None)}</h2>"
    )
    if report.factory:
        parts.append(f'<p class="meta">factory <code>{escape(report.factory)}</code></p>')
    parts.append(f'<p class="meta">device: {escape(report.device)}; seed {report.seed}</p>')
    parts.append(f'<p class="meta">weights: {escape(weights_line(report))}</p>')
    if report.device_note:
        parts.append(f'<div class="note">{escape(report.device_note)}</div>')
    if report.inputs:
        guessed = " <b>(guessed)</b>" if report.inputs_guessed else ""
        parts.append(f'<p class="meta">inputs: <code>{escape(report.inputs)}</code>{guessed}</p>')
    for note in report.notes:
        parts.append(f'<p class="meta">note: {escape(note)}</p>')
    if report.error:
        parts.append(
            f'<div class="error">error ({escape(str(report.error_kind))}): {escape(report.error)}</div>'
        )
        parts.append("</section>")
        return "".join(parts)
    rec = report.recommendation()
    parts.append(f'<div class="rec"><b>Recommendation:</b> {escape(rec.text)}')
    for alt in rec.alternatives:
        parts.append(f"<br>alternative: {escape(alt)}")
    parts.append("</div>")
    parts.append("<h3>fp32 / fp16 / autocast / bf16</h3>")
    parts.append(_runs_table(report))
    parts.append("<h3>Max |activation| per layer</h3>")
    parts.append(_chart(report))
    parts.append("<h3>Max |x| per op call</h3>")
    parts.append(_chart(report, "op"))
    parts.append(f"<h3>Places in the {escape(report.prepared)} run, worst first</h3>")
    parts.append(_places_table(report))
    parts.append("<h3>Parameter and buffer dtypes after the cast</h3>")
    parts.append(_dtypes_table(report))
    parts.append(_grads_table(report))
    parts.append("</section>")
    return "".join(parts)


def _join_section(joined) -> str:
    if joined is None:
        return ""
    parts = ['<section class="target"><h2>Static findings against the runtime</h2>']
    if joined.joined:
        rows = [
            "<tr><th>verdict</th><th>code</th><th>where</th><th>targets</th><th>evidence</th></tr>"
        ]
        for j in joined.joined:
            f = j.finding
            rows.append(
                f"<tr><td>{_badge(j.verdict)}</td><td>{escape(f.code)}</td>"
                f"<td><code>{escape(short_path(f.path))}:{f.span.start.line}</code></td>"
                f"<td>{escape(', '.join(j.targets))}</td><td>{escape(j.evidence)}</td></tr>"
            )
        parts.append('<div class="scroll"><table>' + "".join(rows) + "</table></div>")
    else:
        parts.append('<p class="meta">no runtime-checkable finding</p>')
    parts.append("<h3>Missed by the linter</h3>")
    if joined.missed:
        rows = ["<tr><th>where</th><th>op</th><th>target</th><th>run</th><th>why</th></tr>"]
        for m in joined.missed:
            rows.append(
                f"<tr><td><code>{escape(short_path(m.file))}:{m.line}</code></td><td>{escape(m.what)}</td>"
                f"<td>{escape(m.target)}</td><td>{escape(m.run)}</td><td>{escape('; '.join(m.reasons))}</td></tr>"
            )
        parts.append("<table>" + "".join(rows) + "</table>")
    else:
        parts.append('<p class="meta">none</p>')
    parts.append("</section>")
    return "".join(parts)


def page_verdict(report: Report) -> tuple[str, str]:
    """(word, css class) for the banner: unsafe, at risk, safe; "not cleared" on random weights."""
    if report.error:
        return "error", "v-nr"
    v = report.verdict
    if v == CONFIRMED:
        return "unsafe", "v-conf"
    if v == AT_RISK:
        return "at risk", "v-risk"
    if report.weights != "trained":
        return "not cleared (random weights)", "v-risk"
    return "safe", "v-ok"


def _banner(reports: Sequence[Report], title: str) -> str:
    """The page's first lines: per target the verdict and the one thing to change."""
    rows = []
    for r in reports:
        word, cls = page_verdict(r)
        rec = r.recommendation()
        change = rec.lines[0] if rec.lines else ""
        what = f"change <span class='change'>{escape(change)}</span>: " if change else ""
        text = rec.text.split(" [", 1)[0]
        text = text if len(text) <= 200 else text[:197] + "..."
        rows.append(
            f'<div class="row"><span class="big {cls}">{escape(word.upper())}</span>'
            f"<b>{escape(r.name)}</b><span>{what}{escape(text)}</span></div>"
        )
    return f'<div class="banner"><h1>{escape(title)}</h1>' + "".join(rows) + "</div>"


def render_html(
    reports: Sequence[Report], joined=None, title: str = "fp16lint runtime report"
) -> str:
    body = [_banner(reports, title)]
    for r in reports:
        body.append(_target_section(r))
    body.append(_join_section(joined))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        + "".join(body)
        + "</body></html>\n"
    )
