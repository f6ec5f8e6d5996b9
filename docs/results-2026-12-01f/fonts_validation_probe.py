"""Font digits under preprocessing variants, for the robust final models. Usage: python fonts_probe.py SET VARIANT..."""

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab import preprocess as P
from digitlab.engines import load_engine
from digitlab.robustness import FONT_SIZES, find_fonts

VAL_DIRS = sys.argv[1]


def fonts_for(which):
    if which == "bench":
        return find_fonts(None)
    return sorted(
        p
        for p in Path("/usr/share/fonts").rglob("*")
        if p.suffix.lower() in (".ttf", ".otf") and p.parent.name in which.split(",")
    )


def stroke_width(digit):
    """2 * area / perimeter of the ink (> half of 255) of a box digit: a long stroke's width in pixels."""
    ink = digit > 127
    padded = np.pad(ink, 1)
    inner = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    edge = (ink & ~inner).sum()
    return 2 * ink.sum() / max(edge, 1)


def variant_fn(name):
    def fit(gray):
        d = P.fit_box(gray)
        if name.startswith("thick"):
            target = float(name[5:])
            if stroke_width(d) < target:
                padded = np.pad(d, 1)
                d = np.max([padded[i : i + d.shape[0] + 0, j : j + d.shape[1]] for i in range(3) for j in range(3)], 0)
                # keep the box: pad adds 1 on each side; take the dilated inner area (same size as before)
        return d

    return lambda image: P.centre_of_mass(fit(P.ink_on_black(P.grayscale(image))))


def digits(fonts, prep):
    images, labels, names = [], [], []
    for f in fonts:
        for size in FONT_SIZES:
            font = ImageFont.truetype(str(f), size)
            for digit in range(10):
                pic = Image.new("L", (2 * size, 2 * size), 255)
                ImageDraw.Draw(pic).text((size, size), str(digit), fill=0, font=font, anchor="mm")
                try:
                    images.append(prep(pic))
                except ValueError:
                    continue
                labels.append(digit)
                names.append(f.stem)
    return np.stack(images), np.array(labels), names


engines = [load_engine(f"/work/main/benchmarks/out/robust-final-s{s}") for s in range(3)]
fonts = fonts_for(VAL_DIRS)
print(len(fonts), "fonts:", [f.stem for f in fonts])
for v in sys.argv[2:]:
    x, y, names = digits(fonts, variant_fn(v))
    accs, wrong = [], []
    for e in engines:
        p = e.predict_proba(x[:, None].astype(np.float32)).argmax(1)
        accs.append((p == y).mean())
        wrong.append(sorted({f"{n}:{t}->{q}" for n, t, q in zip(names, y, p) if t != q}))
    print(f"{v:10s} n={len(y)} acc " + " ".join(f"{a * 100:.2f}" for a in accs) + f" mean {np.mean(accs) * 100:.2f}")
    for w in wrong:
        print("   ", len(w), w[:12])
