"""The second round's probe as it ran (PLAN.md beside it; output: typed_probe_fast.txt): the fast recipe on MNIST
train[:55000] with and without typed digits; clean = train[55000:], and the validation fonts."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.datasets import load_split
from digitlab.engines import load_engine
from digitlab.preprocess import mnist_style
from digitlab.robustness import font_digits

sys.path.insert(0, "/tmp/probe")

OUT = Path("/tmp/probe/typed")
OUT.mkdir(exist_ok=True)
x, y = load_split("mnist", "train")


def typed_digits():
    files = sorted(
        p
        for p in Path("/usr/share/fonts/truetype").rglob("*.ttf")
        if p.parent.name in ("dejavu", "liberation") and "Math" not in p.name
    )
    images, labels = [], []
    for f in files:
        for size in (96, 64, 40):
            font = ImageFont.truetype(str(f), size)
            for d in range(10):
                pic = Image.new("L", (2 * size, 2 * size), 255)
                ImageDraw.Draw(pic).text((size, size), str(d), fill=0, font=font, anchor="mm")
                for angle in (-10, 0, 10):
                    images.append(mnist_style(pic.rotate(angle, resample=Image.BICUBIC, fillcolor=255)))
                    labels.append(d)
    return len(files), np.stack(images), np.array(labels)


if not (OUT / "with.npz").exists():
    n, ti, tl = typed_digits()
    print(n, "typed fonts,", len(ti), "typed digits")
    np.savez(OUT / "without.npz", images=x[:55000], labels=y[:55000])
    np.savez(OUT / "with.npz", images=np.concatenate([x[:55000], ti]), labels=np.concatenate([y[:55000], tl]))

val_fonts = sorted(
    p
    for p in Path("/usr/share/fonts").rglob("*")
    if p.suffix.lower() in (".ttf", ".otf")
    and p.parent.name
    in "bwht,ecolier-court,kaushanscript,klee,yusei-magic,cabinsketch,joscelyn,havana,leckerli-one".split(",")
)
fx, fy, _ = font_digits(val_fonts)
hx, hy = x[55000:], y[55000:]
for variant in ("without", "with"):
    for seed in (0, 1):
        run = OUT / f"{variant}-s{seed}"
        if not (run / "model.safetensors").exists():
            subprocess.run(
                [
                    "/work/main/.venv/bin/digitlab",
                    "train",
                    "--recipe",
                    "fast",
                    "--data",
                    str(OUT / f"{variant}.npz"),
                    "--val-size",
                    "0",
                    "--seed",
                    str(seed),
                    "--out",
                    str(run),
                ],
                check=True,
                capture_output=True,
            )
        e = load_engine(run)
        clean = (e.predict_proba(hx[:, None].astype(np.float32)).argmax(1) == hy).mean()
        fonts = (e.predict_proba(fx[:, None].astype(np.float32)).argmax(1) == fy).mean()
        print(
            f"{variant:8s} seed {seed}: held-out MNIST {clean * 100:.2f} %  "
            f"validation fonts {fonts * 100:.2f} % ({len(fy)})",
            flush=True,
        )
