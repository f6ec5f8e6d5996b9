"""What distillation buys: students of a teacher against the same students trained on the labels alone, and their
inference speed against the reference CNN's.

For each seed, two complete commands as a user runs them: `digitlab distill TEACHER --weight W --seed S [flags]`
and the same with `--weight 0` (the target is then the one-hot label: plain training on exactly the same split,
schedule and model). Reported: the teacher's test accuracy (its ensemble.json or metrics.json), each student's test
accuracy (the model its validation chose), mean over seeds, the gain, and images/s at batch 64 through ONNX Runtime
and PyTorch for a student and for a reference CNN (a teacher member, or `--reference RUN` when the teacher is another
architecture), timed in three alternating rounds in this process (the medians are kept). Prints a table and one
JSON object (benchmarks/out/bench_distill.json).

    python benchmarks/bench_distill.py runs/ensemble --seeds 0,1 --train-args "--epochs 8"
    python benchmarks/bench_distill.py runs/wide-ensemble --reference runs/reference --train-args "--epochs 12"
    python benchmarks/bench_distill.py runs/wide-ensemble --reference runs/reference \
        --train-args "--epochs 12 --consistent" --tag consistent-e12 --baseline-tag fast
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from bench_inference import rate
from common import OUT, digitlab, machine, mean_std, write_result

from digitlab.checkpoint import checkpoint_config
from digitlab.datasets import load_split
from digitlab.engines import OnnxEngine, TorchEngine
from digitlab.export import export_onnx
from digitlab.runs import is_ensemble, read_manifest


def teacher_accuracy(teacher: Path) -> tuple[float, Path]:
    """(test accuracy, a run folder holding one of its reference CNNs)."""
    if is_ensemble(teacher):
        manifest = read_manifest(teacher)
        key = "test_accuracy_tta" if manifest["tta"] else "test_accuracy"
        return manifest["metrics"][key], teacher / manifest["members"][0]
    return json.loads((teacher / "metrics.json").read_text())["test"]["accuracy"], teacher


def student(teacher: Path, weight: float, seed: int, extra: list[str], tag: str) -> dict:
    if weight == 0:  # labels only: no teacher pass is needed (and --consistent would only cost time)
        extra = [flag for flag in extra if flag != "--consistent"]
    out = OUT / f"distill-{teacher.name}-{tag}-w{weight:g}-s{seed}"
    if not (out / "metrics.json").is_file():
        args = ["--weight", str(weight), "--seed", str(seed), *extra, "--out", str(out)]
        seconds, _ = digitlab("distill", str(teacher), *args)
    else:
        seconds = float("nan")  # reused from an earlier run of this benchmark
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"  weight {weight:g}, seed {seed}: test {metrics['test']['accuracy']:.2%} ({seconds:.0f} s)", flush=True)
    return {"weight": weight, "seed": seed, "test_accuracy": metrics["test"]["accuracy"], "wall_s": seconds,
            "run": str(out)}  # fmt: skip


def architecture(run: Path) -> str:
    return checkpoint_config(run / "model.safetensors").model.arch


def speeds(runs: dict[str, Path], images: torch.Tensor, rounds: int = 3) -> dict:
    """{name: {engine: images/s at batch 64}}: every model once per round, rounds alternating, medians kept."""
    engines = {}
    for name, run in runs.items():
        onnx = export_onnx(run, OUT / f"bench_distill_{name}.onnx", verify=False, force=True)["out"]
        engines[name] = {"onnx": OnnxEngine(Path(onnx)), "torch": TorchEngine(run / "model.safetensors")}
    seen = {name: {kind: [] for kind in kinds} for name, kinds in engines.items()}
    for _ in range(rounds):
        for name, kinds in engines.items():
            for kind, engine in kinds.items():
                seen[name][kind].append(rate(engine, images, 64))
    return {name: {kind: sorted(v)[len(v) // 2] for kind, v in kinds.items()} for name, kinds in seen.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("teacher", type=Path)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--weight", type=float, default=0.7)
    parser.add_argument("--train-args", default="", help="extra flags for digitlab distill (e.g. --epochs 8)")
    parser.add_argument("--tag", default="student", help="names the student folders (one per flag set)")
    parser.add_argument("--baseline-tag", help="names the labels-only students' folders (default: --tag), so that "
                        "students trained with other teaching flags reuse one baseline")  # fmt: skip
    parser.add_argument("--reference", type=Path, help="a run folder of the reference CNN, the speed yardstick "
                        "(default: a teacher member, which must then be one)")  # fmt: skip
    args = parser.parse_args()
    extra = args.train_args.split()
    result = {"machine": machine(), "teacher": str(args.teacher), "train_args": args.train_args}
    result["teacher_test_accuracy"], reference_run = teacher_accuracy(args.teacher)
    reference_run = args.reference or reference_run
    if architecture(reference_run) != "reference":
        sys.exit(f"{reference_run} is not a reference CNN: pass --reference RUN (any run of the reference CNN)")
    rows = [
        student(args.teacher, weight, int(seed), extra, args.tag if weight else args.baseline_tag or args.tag)
        for seed in args.seeds.split(",")
        for weight in (0.0, args.weight)
    ]
    result["rows"] = rows
    plain = [r["test_accuracy"] for r in rows if r["weight"] == 0]
    taught = [r["test_accuracy"] for r in rows if r["weight"] > 0]
    result["labels_only"], result["distilled"] = mean_std(plain), mean_std(taught)
    images = torch.from_numpy(load_split("mnist", "test")[0]).unsqueeze(1)
    student_run = Path(next(r["run"] for r in rows if r["weight"] > 0))
    measured = speeds({"reference": reference_run, "student": student_run}, images)
    result["reference_run"] = str(reference_run)
    result["images_per_s_batch64"] = {"reference CNN": measured["reference"], "student": measured["student"]}
    ref, stu = result["images_per_s_batch64"].values()
    print(f"\nmachine: {result['machine']}\nteacher {args.teacher}: test {result['teacher_test_accuracy']:.2%}")
    print("| student | test accuracy, mean ± std | seeds |\n|---|---|---|")
    for name, values in (("labels only (--weight 0)", plain), (f"distilled (--weight {args.weight:g})", taught)):
        mean, std = mean_std(values)
        print(f"| {name} | {mean:.2%} ± {std:.2%} | {', '.join(f'{v:.2%}' for v in values)} |")
    print("\n| model | ONNX Runtime img/s, batch 64 | PyTorch img/s, batch 64 |\n|---|---|---|")
    for name, figures in result["images_per_s_batch64"].items():
        print(f"| {name} | {figures['onnx']:,.0f} | {figures['torch']:,.0f} |")
    print(f"| student / reference | {stu['onnx'] / ref['onnx']:.1f}x | {stu['torch'] / ref['torch']:.1f}x |")
    write_result("bench_distill", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
