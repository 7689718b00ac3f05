"""Join static findings to what the runtime probe saw.

- FP202/FP203 (ops) and FP301/FP302/FP304 (constants): by source path and line (any op of
  interest that ran on the finding's lines; failing that, a module called there).
- FP201 (layers): by class and attribute: the class around the finding's line and the ``self.x``
  it assigns; matched to modules whose parent has that class and whose attribute is ``x``.
- FP101/FP501 (and FP502/FP503): by the model: the verdict of the run as the code prepares it, for
  the targets whose factory function holds the finding's line (else: built in the finding's file,
  or of the model class the message names).

Any other finding on the line of a raise or a confirmed op is joined there too.

Verdicts: ``confirmed``, ``at-risk``, ``poisoned`` (inf/NaN from upstream), ``not-observed`` (ran,
with the headroom figures), ``not-reached`` (nothing ran there). Confirmed places and raises
without any finding on their line are listed as missed. Torch is not imported here.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fp16lint.findings import Finding

from .records import AT_RISK, CONFIRMED, NOT_OBSERVED, NOT_REACHED, VERDICT_RANK
from .report import Place, Report, fmt_headroom, fmt_max, fmt_pct, short_path

#: joined by line: unsafe ops, hand-written norms, and constants fp16 cannot hold (an overflowing
#: fill value raises or saturates at that line; an epsilon that rounds to 0 underflows there)
OP_CODES = frozenset({"FP202", "FP203", "FP301", "FP302", "FP304"})
LAYER_CODES = frozenset({"FP201"})
MODEL_CODES = frozenset({"FP101", "FP501", "FP502", "FP503"})
JOINED_CODES = OP_CODES | LAYER_CODES | MODEL_CODES


def norm_path(path: str, root: str | None = None) -> str:
    if not os.path.isabs(path):
        path = os.path.join(root or os.getcwd(), path)
    return os.path.normcase(os.path.realpath(path))


@dataclass
class JoinedFinding:
    finding: Finding
    verdict: str
    evidence: str
    targets: list[str] = field(default_factory=list)
    places: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "finding": self.finding.to_dict(),
            "verdict": self.verdict,
            "evidence": self.evidence,
            "targets": list(self.targets),
            "places": self.places,
        }


@dataclass
class MissedPlace:
    target: str
    run: str
    file: str
    line: int
    what: str
    reasons: list[str]
    in_linted_paths: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "run": self.run,
            "filename": self.file,
            "line": self.line,
            "what": self.what,
            "reasons": list(self.reasons),
            "in_linted_paths": self.in_linted_paths,
        }


@dataclass
class JoinResult:
    joined: list[JoinedFinding] = field(default_factory=list)
    missed: list[MissedPlace] = field(default_factory=list)

    def by_code(self, code: str) -> list[JoinedFinding]:
        return [j for j in self.joined if j.finding.code == code]

    def at(self, path: str, line: int, root: str | None = None) -> list[JoinedFinding]:
        p = norm_path(path, root)
        return [
            j
            for j in self.joined
            if norm_path(j.finding.path, root) == p
            and j.finding.span.start.line <= line <= j.finding.span.end.line
        ]

    @property
    def any_confirmed(self) -> bool:
        return any(j.verdict == CONFIRMED for j in self.joined)

    def to_dict(self) -> dict[str, Any]:
        return {
            "findings": [j.to_dict() for j in self.joined],
            "missed": [m.to_dict() for m in self.missed],
        }


# -- source helpers ------------------------------------------------------------------------------

_ast_cache: dict[str, ast.AST | None] = {}


def _parse(path: str) -> ast.AST | None:
    if path not in _ast_cache:
        try:
            with open(path, "rb") as fh:
                _ast_cache[path] = ast.parse(fh.read())
        except (OSError, SyntaxError, ValueError):
            _ast_cache[path] = None
    return _ast_cache[path]


def layer_of_line(path: str, line: int) -> tuple[str | None, str | None]:
    """(enclosing class, ``self.<attr>``) assigned or called on ``line`` of ``path``."""
    tree = _parse(path)
    if tree is None:
        return None, None
    best = None
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ClassDef)
            and node.lineno <= line <= (node.end_lineno or node.lineno)
            and (best is None or node.lineno >= best.lineno)
        ):
            best = node
    if best is None:
        return None, None
    cls_name = best.name
    attr = None
    for node in ast.walk(best):
        lineno = getattr(node, "lineno", None)
        end = getattr(node, "end_lineno", lineno)
        if lineno is None or not (lineno <= line <= (end or lineno)):
            continue
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            targets = [node.target]
        for t in targets:
            if (
                isinstance(t, ast.Attribute)
                and isinstance(t.value, ast.Name)
                and t.value.id == "self"
            ):
                return cls_name, t.attr
        if (
            attr is None
            and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "self"
        ):
            attr = node.func.attr
    return cls_name, attr


# -- the join ------------------------------------------------------------------------------------


def _figures(pl: Place, run: str) -> dict[str, Any]:
    fig = pl.runs.get(run)
    data = {"kind": pl.kind, "where": pl.where, "what": pl.what, "run": run}
    if fig is not None:
        data.update(fig.to_dict())
    return data


def _evidence(pl: Place, run: str, report: Report) -> str:
    fig = pl.runs[run]
    head = f"{report.name}/{run}: {pl.what} at {pl.where}"
    if fig.verdict in (CONFIRMED, AT_RISK):
        return f"{head}: " + "; ".join(fig.reasons)
    ref = pl.runs.get("fp32")
    parts = [
        f"max |x| {fig.max_text}",
        f"headroom {fmt_headroom(fig.headroom)}",
    ]
    if ref is not None and ref.max_abs is not None:
        parts.append(f"fp32 max |x| {ref.max_text} (headroom {fmt_headroom(ref.headroom)})")
    if fig.local_rel_error is not None:
        parts.append(f"error here {fmt_pct(fig.local_rel_error)}")
    if fig.rel_error is not None:
        parts.append(f"error vs fp32 {fmt_pct(fig.rel_error)}")
    return f"{head}: " + ", ".join(parts)


def _pick(places: list[tuple[Report, Place]]) -> tuple[Report, Place] | None:
    best = None
    best_key = None
    for report, pl in places:
        fig = pl.runs.get(report.prepared)
        if fig is None:
            continue
        hr = fig.headroom
        key = (VERDICT_RANK[fig.verdict], -(hr if hr is not None else float("inf")))
        if best_key is None or key > best_key:
            best, best_key = (report, pl), key
    return best


def _join_places(
    f: Finding, matches: list[tuple[Report, Place]], reports: Sequence[Report], what: str
) -> JoinedFinding:
    ran = [(r, p) for r, p in matches if r.prepared in p.runs]
    best = _pick(ran)
    if best is None:
        names = ", ".join(r.name for r in reports if not r.error) or "none"
        return JoinedFinding(
            f, NOT_REACHED, f"no {what} ran here in any target (targets run: {names})"
        )
    report, pl = best
    targets = sorted({r.name for r, _ in ran})
    return JoinedFinding(
        f,
        pl.runs[report.prepared].verdict,
        _evidence(pl, report.prepared, report),
        targets=targets,
        places=[_figures(p, r.prepared) for r, p in ran[:20]],
    )


def join(
    findings: Iterable[Finding],
    reports: Sequence[Report],
    *,
    root: str | None = None,
    linted_paths: Sequence[str] | None = None,
) -> JoinResult:
    """Give each runtime-checkable finding a verdict and list the places the linter missed."""
    findings = list(findings)
    result = JoinResult()
    ok_reports = [r for r in reports if not r.error]
    # index op and module places by normalised file
    ops_by_file: dict[str, list[tuple[Report, Place]]] = {}
    mods_by_call: dict[str, list[tuple[Report, Place]]] = {}
    modules: list[tuple[Report, Place, dict[str, str]]] = []
    for r in ok_reports:
        classes = {pl.module: pl.class_name for pl in r.places() if pl.kind == "module"}
        for pl in r.places():
            if pl.kind == "op" and pl.file:
                ops_by_file.setdefault(norm_path(pl.file, root), []).append((r, pl))
            elif pl.kind == "module":
                modules.append((r, pl, classes))  # type: ignore[arg-type]
                if pl.file:
                    mods_by_call.setdefault(norm_path(pl.file, root), []).append((r, pl))

    raises_by_file: dict[str, list[Report]] = {}
    for r in ok_reports:
        rec = r.runs.get(r.prepared)
        if rec is not None and rec.error and rec.error_site:
            raises_by_file.setdefault(norm_path(rec.error_site[0], root), []).append(r)

    for f in findings:
        fpath = norm_path(f.path, root)
        lo, hi = f.span.start.line, max(f.span.start.line, f.span.end.line)
        raised = [
            r
            for r in raises_by_file.get(fpath, [])
            if lo <= r.runs[r.prepared].error_site[1] <= hi  # type: ignore[index]
        ]
        if f.code not in JOINED_CODES:
            # any finding on the line of a raise or a confirmed op is judged there too
            matches = [
                (r, p)
                for r, p in ops_by_file.get(fpath, [])
                if lo <= (p.line or 0) <= hi and p.verdict(r.prepared) == CONFIRMED
            ]
            if raised:
                result.joined.append(_join_raise(f, raised))
            elif matches:
                result.joined.append(_join_places(f, matches, reports, "op"))
            continue
        if f.code in OP_CODES:
            matches = [(r, p) for r, p in ops_by_file.get(fpath, []) if lo <= (p.line or 0) <= hi]
            if not matches:
                matches = [
                    (r, p) for r, p in mods_by_call.get(fpath, []) if lo <= (p.line or 0) <= hi
                ]
            if raised and not any(p.verdict(r.prepared) == CONFIRMED for r, p in matches):
                result.joined.append(_join_raise(f, raised))
            else:
                result.joined.append(_join_places(f, matches, reports, "op"))
        elif f.code in LAYER_CODES:
            cls, attr = layer_of_line(fpath, lo)
            matches = _layer_matches(modules, cls, attr, fpath, root)
            if not matches:
                matches = [
                    (r, p) for r, p in mods_by_call.get(fpath, []) if lo <= (p.line or 0) <= hi
                ]
            jf = _join_places(
                f, matches, reports, f"module {cls}.{attr}" if cls and attr else "module"
            )
            result.joined.append(jf)
        else:
            result.joined.append(_join_model(f, fpath, reports, root))

    result.missed = _missed(findings, ok_reports, root, linted_paths)
    return result


def _join_raise(f: Finding, reports: Sequence[Report]) -> JoinedFinding:
    """A finding on the line where a target's prepared run raised: confirmed there."""
    r = reports[0]
    rec = r.runs[r.prepared]
    file, line, op = rec.error_site  # type: ignore[misc]
    evidence = f"{r.name}/{r.prepared}: raised at {short_path(file)}:{line}"
    evidence += f" ({op}): {rec.error}" if op else f": {rec.error}"
    return JoinedFinding(f, CONFIRMED, evidence, targets=sorted({x.name for x in reports}))


def _layer_matches(
    modules: list[tuple[Report, Place, dict[str, str]]],
    cls: str | None,
    attr: str | None,
    fpath: str,
    root: str | None,
) -> list[tuple[Report, Place]]:
    if not cls or not attr:
        return []
    exact: list[tuple[Report, Place]] = []
    under: list[tuple[Report, Place]] = []
    for r, pl, classes in modules:
        parts = (pl.module or "").split(".") if pl.module else []
        for i, comp in enumerate(parts):
            if comp != attr:
                continue
            owner = ".".join(parts[:i])
            if classes.get(owner) != cls:
                continue
            if i == len(parts) - 1:
                if pl.parent_file and norm_path(pl.parent_file, root) != fpath:
                    continue
                exact.append((r, pl))
            else:
                under.append((r, pl))
            break
    return exact or under


def _join_model(
    f: Finding, fpath: str, reports: Sequence[Report], root: str | None
) -> JoinedFinding:
    # A target stands for the finding's model only when its factory function holds the
    # finding's line, or (no factory does) when it is built in the finding's file or is of the
    # class the message names: another model's run proves nothing about this one.
    line = f.span.start.line
    in_file = [r for r in reports if r.factory_file and norm_path(r.factory_file, root) == fpath]
    chosen = [
        r for r in in_file if r.factory_lines and r.factory_lines[0] <= line <= r.factory_lines[1]
    ]
    if not chosen:
        chosen = [
            r
            for r in in_file
            if not r.factory_lines or (r.model_class and f"`{r.model_class}`" in f.message)
        ] + [
            r
            for r in reports
            if r not in in_file and r.model_class and f"`{r.model_class}`" in f.message
        ]
    ran = [r for r in chosen if not r.error]
    if not ran:
        why = "; ".join(f"{r.name}: {r.error}" for r in chosen) or "no target builds this model"
        return JoinedFinding(
            f, NOT_REACHED, f"no model ran ({why})", targets=[r.name for r in chosen]
        )
    worst = max(ran, key=lambda r: VERDICT_RANK[r.verdict])
    verdict, reasons = worst.run_verdict(worst.prepared)
    run = worst.runs[worst.prepared]
    counts = run.dtype_counts("params")
    dtypes = ", ".join(f"{dt} {n}" for dt, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    evidence = f"{worst.name}/{worst.prepared} ({run.label}): {verdict}"
    if reasons:
        evidence += " (" + "; ".join(reasons) + ")"
    evidence += f"; params {dtypes}"
    if f.code == "FP501" and len(counts) > 1:
        main = max(counts, key=counts.get)
        kept = [n for n, dt in run.params.items() if dt != main]
        evidence += f"; not {main}: " + ", ".join(kept[:4]) + (" ..." if len(kept) > 4 else "")
    if verdict == NOT_OBSERVED and run.output is not None:
        out = run.output
        evidence += f"; output max |x| {fmt_max(out.max_abs, out.n_inf, out.n_nan)} (headroom {fmt_headroom(out.headroom)})"
    return JoinedFinding(f, verdict, evidence, targets=[r.name for r in ran])


def _missed(
    findings: Sequence[Finding],
    reports: Sequence[Report],
    root: str | None,
    linted_paths: Sequence[str] | None,
) -> list[MissedPlace]:
    lines: dict[str, set[int]] = {}
    for f in findings:
        s = lines.setdefault(norm_path(f.path, root), set())
        s.update(range(f.span.start.line, max(f.span.start.line, f.span.end.line) + 1))
    linted = [norm_path(p, root) for p in linted_paths] if linted_paths is not None else None

    def in_linted(path: str) -> bool | None:
        if linted is None:
            return None
        return any(path == lp or path.startswith(lp.rstrip(os.sep) + os.sep) for lp in linted)

    out: list[MissedPlace] = []
    seen: set[tuple] = set()
    for r in reports:
        run = r.prepared
        rec = r.runs.get(run)
        if rec is None:
            continue
        for pl in r.sorted_places(run):
            if pl.kind != "op" or not pl.file:
                continue
            fig = pl.runs[run]
            if fig.verdict != CONFIRMED:
                continue
            p = norm_path(pl.file, root)
            if pl.line in lines.get(p, ()):
                continue
            key = (r.name, p, pl.line, pl.op)
            if key in seen:
                continue
            seen.add(key)
            reasons = list(fig.reasons)
            out.append(
                MissedPlace(r.name, run, pl.file, pl.line or 0, str(pl.op), reasons, in_linted(p))
            )
        if rec.error and rec.error_site:
            file, line, op = rec.error_site
            p = norm_path(file, root)
            if line not in lines.get(p, ()) and (r.name, p, line, op) not in seen:
                out.append(
                    MissedPlace(
                        r.name, run, file, line, op or "?", [f"raised {rec.error}"], in_linted(p)
                    )
                )
    return out
