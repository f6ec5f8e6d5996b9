"""Digits drawn in the machine's fonts, dark ink on white paper, through the server's preprocessing (preprocess.py).

Three uses, three sets of fonts that never overlap:
- the robustness benchmark's font digits (robustness.py): the handwriting fonts of Debian's packages
  fonts-dkg-handwriting, fonts-breip, fonts-femkeklaver, fonts-rufscript, fonts-sjfonts, fonts-comic-neue,
  fonts-dancingscript, fonts-kristi, fonts-humor-sans and fonts-tomsontalks, each digit at two sizes: another set of
  writers, measured and never trained on;
- typed digits as extra training images (`--typed-digits`, data.py): the 37 DejaVu and Liberation files of
  fonts-dejavu-core, fonts-dejavu-extra and fonts-liberation (no handwriting fonts), each digit at three sizes and
  three slants (3,330 images). They show the model shapes MNIST's writers rarely use, such as a 1 with a flag and a
  foot or an open 4 (README, Beyond MNIST's test set: chosen on handwriting fonts of other packages, not the
  benchmark's).
- handwritten digits as extra training images (`--handwriting-fonts`, data.py): 266 families of Google Fonts'
  "handwriting" category (school scripts of many countries, marker, brush and pen hands), fetched from their
  @fontsource npm packages and pinned by version and SHA-256 in handwriting_fonts.json, each digit at three sizes
  (7,980 images). Every family that the benchmark's or the validation fonts also hold is left out of it
  (scripts/handwriting_manifest.py, which writes the manifest).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .errors import DigitlabError
from .preprocess import mnist_style

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
HANDWRITING = (  # the folders Debian's handwriting font packages install into; other fonts: --fonts FILE...
    "fifthhorseman", "breip", "femkeklaver", "rufscript", "sjfonts", "comic-neue", "dancingscript", "kristi",
    "humor-sans", "tomsontalks",
)  # fmt: skip
FONT_SIZES = (96, 40)  # pixels: a large and a small digit, both drawn on a canvas twice their size
TYPED = tuple(  # the typed-digit fonts, by file name: a fixed list, so that a run's training set is the same anywhere
    [f"DejaVu{family}{style}.ttf" for family in ("Sans", "SansCondensed", "SansMono")
     for style in ("", "-Bold", "-BoldOblique", "-Oblique")]
    + ["DejaVuSans-ExtraLight.ttf"]
    + [f"DejaVu{family}{style}.ttf" for family in ("Serif", "SerifCondensed")
       for style in ("", "-Bold", "-BoldItalic", "-Italic")]
    + [f"Liberation{family}-{style}.ttf" for family in ("Mono", "Sans", "SansNarrow", "Serif")
       for style in ("Regular", "Bold", "BoldItalic", "Italic")]
)  # fmt: skip
TYPED_SIZES = (96, 64, 40)  # pixels
TYPED_SLANTS = (-10.0, 0.0, 10.0)  # degrees, counter-clockwise: upright and leaning digits
NO_GLYPH = "\U0010fffd"  # a private-use code point no font here maps: it draws the font's missing-glyph box


def system_fonts(folders: tuple[str, ...] = FONT_DIRS) -> list[Path]:
    return sorted(
        p for d in folders if Path(d).is_dir() for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf")
    )


def find_fonts(named: list[str] | None = None) -> list[Path]:
    """Font files: those `named` (paths), else the known handwriting fonts under the system font folders."""
    if named:
        missing = [f for f in named if not Path(f).is_file()]
        if missing:
            raise DigitlabError(f"--fonts: no such font file: {missing[0]}")
        return [Path(f) for f in named]
    return [p for p in system_fonts() if p.parent.name in HANDWRITING]


def typed_fonts(folders: tuple[str, ...] = FONT_DIRS) -> list[Path]:
    """The TYPED font files under `folders`, in TYPED's order; every one must be there."""
    found = {p.name: p for p in system_fonts(folders)}
    missing = [name for name in TYPED if name not in found]
    if missing:
        raise DigitlabError(f"--typed-digits needs {len(TYPED)} DejaVu and Liberation fonts; {len(missing)} are not "
                            f"installed (e.g. {missing[0]}). Debian: apt install fonts-dejavu-core fonts-dejavu-extra "
                            "fonts-liberation, or train with --no-typed-digits")  # fmt: skip
    return [found[name] for name in TYPED]


def font_digits(
    fonts: list[Path], sizes: tuple[int, ...] = FONT_SIZES, slants: tuple[float, ...] = (0.0,)
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Digits 0-9 in each font at each size and slant, dark on white, preprocessed as the server does:
    (N, 28, 28) uint8, labels (N,), and each digit's font name. A digit the font has no glyph for is left out:
    either nothing is drawn, or the font's box for a missing glyph, the same picture as for NO_GLYPH."""
    from PIL import Image, ImageDraw, ImageFont

    def drawn(text: str, font, size: int) -> Image.Image:
        picture = Image.new("L", (2 * size, 2 * size), 255)
        ImageDraw.Draw(picture).text((size, size), text, fill=0, font=font, anchor="mm")
        return picture

    images, labels, names = [], [], []
    for font_file in fonts:
        for size in sizes:
            font = ImageFont.truetype(str(font_file), size)
            missing_glyph = drawn(NO_GLYPH, font, size).tobytes()
            for digit in range(10):
                picture = drawn(str(digit), font, size)
                if picture.tobytes() == missing_glyph:
                    continue
                for slant in slants:
                    slanted = picture.rotate(slant, resample=Image.BICUBIC, fillcolor=255) if slant else picture
                    try:
                        images.append(mnist_style(slanted))
                    except ValueError:  # an empty glyph: nothing was drawn
                        continue
                    labels.append(digit)
                    names.append(font_file.stem)
    if not images:
        return np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.int64), []
    return np.stack(images), np.array(labels, dtype=np.int64), names


def typed_digits(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The typed training digits: (3,330, 28, 28) uint8 and their labels, from the data cache once drawn."""
    fonts = typed_fonts()
    return drawn_digits("typed-digits", fonts, fonts, TYPED_SIZES, TYPED_SLANTS, data_dir)


def drawn_digits(
    kind: str, fonts: list[Path], depends_on: list[Path], sizes, slants, data_dir: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """font_digits(fonts, sizes, slants) without labels' font names, kept in the data cache: drawing thousands of
    digits takes up to half a minute. The file's key covers everything they depend on: the `depends_on` files, this
    module and preprocess.py, and Pillow's version."""
    import PIL

    from . import preprocess
    from .datasets import cached_arrays, data_root

    key = hashlib.sha256(PIL.__version__.encode())
    for file in [*depends_on, Path(__file__), Path(preprocess.__file__)]:
        key.update(file.read_bytes())

    def draw() -> dict[str, np.ndarray]:
        images, labels, _ = font_digits(fonts, sizes, slants)
        return {"images": images, "labels": labels}

    def complete(cached: dict) -> bool:
        return cached["images"].shape == (len(cached["labels"]), 28, 28) and cached["images"].dtype == np.uint8

    drawn = cached_arrays(data_root(data_dir) / "typed" / f"{kind}-{key.hexdigest()[:16]}.npz", draw, complete)
    return drawn["images"], drawn["labels"]


HANDWRITING_MANIFEST = Path(__file__).with_name("handwriting_fonts.json")
HANDWRITTEN_SIZES = (96, 64, 40)  # pixels, as the typed digits' (upright only: training's affine warp slants them)
NPM_REGISTRY = "https://registry.npmjs.org"  # or $npm_config_registry, npm's own setting for a mirror
MAX_FONT_PACKAGE = 64 << 20  # bytes: the largest @fontsource tarball in the manifest is ~20 MiB


def handwriting_fonts(data_dir: str | None = None) -> list[Path]:
    """The manifest's font files in the data cache, in the manifest's order; those missing or not matching their
    SHA-256 are fetched first (in parallel; each written only once verified, as the datasets' files are)."""
    from .datasets import cached_file_ok, data_root

    entries = json.loads(HANDWRITING_MANIFEST.read_text())["fonts"]
    folder = data_root(data_dir) / "fonts" / "handwriting"
    paths = [folder / f"{entry['id']}.woff2" for entry in entries]
    missing = [(e, p) for e, p in zip(entries, paths) if not cached_file_ok(p, e["sha256"])]
    if missing:
        print(f"digitlab: fetching {len(missing)} handwriting fonts from the npm registry (@fontsource packages)")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: _fetch_font(*job), missing))
    return paths


def _fetch_font(entry: dict, target: Path) -> None:
    """One font file out of its npm package's tarball: straight from the registry, else through `npm pack`."""
    from .datasets import install_verified, npm_pack
    from .formats import read_capped

    package = entry["package"]  # '@fontsource/name@version'
    name, version = package.rsplit("@", 1)
    registry = os.environ.get("npm_config_registry", NPM_REGISTRY).rstrip("/")
    url = f"{registry}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            tarball = read_capped(response, MAX_FONT_PACKAGE)
    except OSError as e:  # no direct route to the registry: the npm client may have one (a proxy, a mirror)
        try:
            with tempfile.TemporaryDirectory(prefix="digitlab-npm-") as tmp:
                tarball = npm_pack(package, Path(tmp)).read_bytes()
        except DigitlabError as npm_error:
            raise DigitlabError(f"--handwriting-fonts: {package} could not be fetched ({url}: {e}; {npm_error}); "
                                "connect to the npm registry once (or set npm_config_registry to a mirror), or "
                                "train with --no-handwriting-fonts") from None  # fmt: skip
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
            data = tar.extractfile(f"package/{entry['file']}").read()
    except (tarfile.TarError, KeyError, AttributeError):
        raise DigitlabError(f"--handwriting-fonts: {package} holds no {entry['file']}") from None
    try:
        install_verified(target, data, entry["sha256"])
    except ValueError as e:
        raise DigitlabError(f"--handwriting-fonts: {package}'s {entry['file']} has {e}") from None


def handwritten_digits(data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The handwriting-font training digits: (7,980, 28, 28) uint8 and their labels, from the data cache once drawn."""
    fonts = handwriting_fonts(data_dir)
    return drawn_digits("handwritten-digits", fonts, [HANDWRITING_MANIFEST], HANDWRITTEN_SIZES, (0.0,), data_dir)
