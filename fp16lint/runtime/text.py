"""Readable text for runtime reports: the run comparison, places worst first, dtypes, advice."""

from __future__ import annotations

from collections.abc import Sequence

from .join import JOINED_CODES, JoinResult
from .records import NOT_OBSERVED, RUN_FP32, VERDICT_RANK
from .report import Report, fmt_headroom, fmt_max, fmt_pct, short_path, weights_line


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            out.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _trim(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _runs_table(report: Report) -> str:
    headers = [
        "run",
        "how",
        "max |x|",
        "headroom",
        "inf/NaN out",
        "clamped",
        "err vs fp32",
        "cosine",
        "time",
        "verdict",
    ]
    rows = []
    for name in report.run_names():
        rec = report.runs[name]
        verdict, _ = report.run_verdict(name)
        mark = " *" if name == report.prepared else ""
        if rec.error:
            rows.append(
                [
                    name + mark,
                    _trim(rec.label, 40),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    f"{rec.duration_s:.2f}s",
                    "raised" if name == RUN_FP32 else verdict,
                ]
            )
            continue
        out = rec.output
        rows.append(
            [
                name + mark,
                _trim(rec.label, 40),
                fmt_max(out.max_abs, out.n_inf, out.n_nan) if out else "-",
                fmt_headroom(out.headroom if out else None),
                f"{out.n_inf}/{out.n_nan}" if out else "-",
                str(out.clamped) if out else "-",
                fmt_pct(out.rel_error) if out and name != RUN_FP32 else "-",
                (f"{out.cosine:.6f}" if out and out.cosine is not None else "-")
                if name != RUN_FP32
                else "-",
                f"{rec.duration_s:.2f}s",
                verdict if name != RUN_FP32 else "reference",
            ]
        )
    return table(headers, rows, right=(2, 3, 5, 6, 7, 8))


def _places_table(report: Report, max_places: int) -> tuple[str, int, int]:
    run = report.prepared
    places = [pl for pl in report.sorted_places(run) if pl.shown(run)]
    shown = [pl for pl in places if pl.runs[run].verdict != NOT_OBSERVED]
    rest = [pl for pl in places if pl.runs[run].verdict == NOT_OBSERVED]
    shown = (shown + rest)[: max(max_places, len(shown))]
    if len(shown) > 60:
        shown = shown[:60]
    fp32 = RUN_FP32
    headers = [
        "verdict",
        "where",
        "op / module",
        "dtype",
        "calls",
        "max|x| fp32",
        f"max|x| {run}",
        "headroom",
        "inf",
        "NaN",
        "clamped",
        "err here",
        "err vs fp32",
        "underflow",
        "why",
    ]
    rows = []
    for pl in shown:
        fig = pl.runs[run]
        ref = pl.runs.get(fp32)
        rows.append(
            [
                fig.verdict,
                _trim(pl.where, 48),
                _trim(pl.what, 44),
                ",".join(d.replace("float", "f").replace("bf16", "bf16") for d in fig.dtypes)
                or "-",
                str(fig.calls),
                ref.max_text if ref else "-",
                fig.max_text,
                fmt_headroom(fig.headroom),
                str(fig.inf_created),
                str(fig.nan_created),
                str(fig.clamped),
                fmt_pct(fig.local_rel_error),
                fmt_pct(fig.rel_error),
                fmt_pct(fig.local_underflow if pl.kind == "op" else fig.underflow),
                _trim("; ".join(fig.reasons), 70),
            ]
        )
    return table(headers, rows, right=(4, 5, 6, 7, 8, 9, 10, 11, 12, 13)), len(shown), len(places)


def _dtype_lines(report: Report) -> list[str]:
    lines = []
    for name in report.run_names():
        rec = report.runs[name]
        if not rec.params:
            continue
        counts = rec.dtype_counts("params")
        desc = ", ".join(f"{dt} {n}" for dt, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        line = f"  {name:<14} params: {desc}"
        if len(counts) > 1:
            main = max(counts, key=counts.get)
            odd = [n for n, dt in rec.params.items() if dt != main]
            line += (
                f"; not {main}: "
                + ", ".join(odd[:6])
                + (f" (+{len(odd) - 6} more)" if len(odd) > 6 else "")
            )
        bcounts = rec.dtype_counts("buffers")
        if bcounts:
            line += "; buffers: " + ", ".join(f"{dt} {n}" for dt, n in bcounts.items())
        lines.append(line)
    return lines


def _grad_lines(report: Report) -> list[str]:
    lines = []
    for name in report.run_names():
        g = report.runs[name].grads
        if g is None:
            continue
        parts = [f"{g.n_params} params"]
        if g.underflow is not None:
            parts.append(f"underflow {fmt_pct(g.underflow)} (0 here, non-zero in fp32)")
        if g.below_fp16_subnormal is not None:
            parts.append(f"below fp16 subnormal {fmt_pct(g.below_fp16_subnormal)}")
        if g.below_fp16_normal is not None:
            parts.append(f"below fp16 normal {fmt_pct(g.below_fp16_normal)}")
        parts.append(f"inf/NaN {g.n_inf}/{g.n_nan}")
        parts.append("GradScaler needed" if g.gradscaler_needed else "GradScaler not needed")
        line = f"  {name:<14} " + ", ".join(parts)
        if g.note:
            line += f"\n  {'':<14} {g.note}"
        lines.append(line)
    return lines


def format_report(report: Report, max_places: int = 25) -> str:
    title = f"fp16lint runtime: {report.name}"
    if report.factory:
        title += f" ({report.factory})"
    out = [title, "=" * len(title)]
    out.append(f"device: {report.device}")
    out.append(f"weights: {weights_line(report)}")
    if report.device_note:
        out.append(f"NOTE: {report.device_note}")
    if report.inputs:
        out.append(f"inputs: {report.inputs}" + ("  [GUESSED]" if report.inputs_guessed else ""))
    for note in report.notes:
        out.append(f"note: {note}")
    if report.error:
        out.append(f"ERROR ({report.error_kind}): {report.error}")
        return "\n".join(out)
    out.append("")
    out.append(_runs_table(report))
    out.append(
        f"(* = the model as the code prepares it; verdict of the whole run; limit 65504, "
        f"at-risk within {report.thresholds.risk_factor:g}x)"
    )
    for name in report.run_names():
        rec = report.runs[name]
        if rec.error:
            site = ""
            if rec.error_site:
                site = f" at {short_path(rec.error_site[0])}:{rec.error_site[1]}"
                if rec.error_site[2]:
                    site += f" ({rec.error_site[2]})"
            out.append(f"  {name} raised{site}: {rec.error}")
        for note in rec.notes:
            out.append(f"  {name}: {note}")
        if rec.nonfinite_params:
            bad = ", ".join(f"{n} ({c} values)" for n, c in list(rec.nonfinite_params.items())[:6])
            out.append(f"  {name}: parameters holding inf/NaN after the cast: {bad}")
    out.append("")
    tbl, n_shown, n_all = _places_table(report, max_places)
    out.append(
        f"places in the {report.prepared} run, worst first ({n_shown} of {n_all} op sites and modules):"
    )
    out.append(tbl)
    out.append("")
    out.append("parameter dtypes after the cast:")
    out.extend(_dtype_lines(report))
    grads = _grad_lines(report)
    if grads:
        out.append("")
        out.append("gradients (sum loss, against fp32):")
        out.extend(grads)
    out.append("")
    rec = report.recommendation()
    out.append(f"recommendation: {rec.text}")
    for alt in rec.alternatives:
        out.append(f"  alternative: {alt}")
    return "\n".join(out)


def format_join(joined: JoinResult) -> str:
    """The static findings against the runtime, and what the runtime saw that none predicted."""
    out = ["static findings against the runtime:"]
    if not joined.joined:
        out.append("  (no runtime-checkable finding: " + ", ".join(sorted(JOINED_CODES)) + ")")
    else:
        rows = []
        for j in sorted(
            joined.joined, key=lambda j: (-VERDICT_RANK[j.verdict], j.finding.sort_key)
        ):
            f = j.finding
            rows.append(
                [
                    j.verdict,
                    f.code,
                    f"{short_path(f.path)}:{f.span.start.line}",
                    ", ".join(j.targets) or "-",
                    j.evidence if len(j.evidence) <= 110 else j.evidence[:107] + "...",
                ]
            )
        out.append(table(["verdict", "code", "where", "targets", "evidence"], rows))
    out.append("")
    if joined.missed:
        out.append("missed (a confirmed place or a raise with no finding on its line):")
        rows = []
        for m in joined.missed:
            scope = "" if m.in_linted_paths in (None, True) else " (outside the linted paths)"
            rows.append(
                [
                    f"{short_path(m.file)}:{m.line}",
                    m.what,
                    m.target,
                    m.run,
                    "; ".join(m.reasons) + scope,
                ]
            )
        out.append(table(["where", "op", "target", "run", "why"], rows))
    else:
        out.append("missed: none (every confirmed place and raise has a finding on its line)")
    return "\n".join(out)


def format_reports(
    reports: Sequence[Report], joined: JoinResult | None = None, max_places: int = 25
) -> str:
    parts = [format_report(r, max_places=max_places) for r in reports]
    if joined is not None:
        parts.append(format_join(joined))
    if len(reports) > 1:
        rows = []
        for r in reports:
            rows.append(
                [
                    r.name,
                    "error" if r.error else r.verdict,
                    "ok" if r.ok else "NOT OK",
                    _trim(r.recommendation().text, 90),
                ]
            )
        parts.append("summary:\n" + table(["target", "verdict", "ok", "recommendation"], rows))
    return "\n\n".join(parts)
