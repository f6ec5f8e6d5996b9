"""Write digitlab/handwriting_fonts.json: the Google Fonts handwriting families that `--handwriting-fonts` trains on,
each pinned to one @fontsource npm package version and the SHA-256 of its Latin regular-weight WOFF2 file.

    python scripts/handwriting_manifest.py      # needs the npm registry; rewrites the manifest

The families: every family of Google Fonts' "handwriting" category with a Latin subset (google-font-metadata, the
fontsource project's catalogue of Google Fonts), less the "-guides" variants (the same letters drawn on school
guide lines) and less every family that the robustness benchmark's fonts or the validation fonts also hold
(fonts.HANDWRITING, benchmarks/bench_fonts_val.py), so that neither font set is ever trained on.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REGISTRY = "https://registry.npmjs.org"
CATALOGUE = "google-font-metadata@6.0.8"
# Google Fonts families that are also benchmark fonts (Comic Neue, Dancing Script, Kristi) or validation fonts
# (Kaushan Script, Klee One, Leckerli One, Lobster, Cabin Sketch, Yusei Magic); the others of both sets are not on
# Google Fonts under any name
HELD_OUT = {"comic-neue", "dancing-script", "kristi", "kaushan-script", "klee-one", "leckerli-one", "lobster",
            "lobster-two", "cabin-sketch", "yusei-magic"}  # fmt: skip
OUT = Path(__file__).resolve().parents[1] / "digitlab" / "handwriting_fonts.json"


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def tarball(package: str, version: str) -> bytes:
    scope_less = package.split("/")[-1]
    return get(f"{REGISTRY}/{package}/-/{scope_less}-{version}.tgz")


def catalogue() -> dict:
    name, version = CATALOGUE.rsplit("@", 1)
    with tarfile.open(fileobj=io.BytesIO(tarball(name, version))) as tar:
        return json.load(tar.extractfile("package/data/google-fonts-v2.json"))


def entry(font: dict) -> dict | None:
    package = f"@fontsource/{font['id']}"
    try:
        version = json.loads(get(f"{REGISTRY}/{package.replace('/', '%2f')}/latest"))["version"]
    except urllib.error.HTTPError as e:  # a family fontsource has not published (yet)
        if e.code == 404:
            return None
        raise
    data = tarball(package, version)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
        weights = sorted(font["weights"], key=lambda w: (abs(w - 400), w))  # the regular weight, else the nearest
        for weight in weights:
            member = f"package/files/{font['id']}-latin-{weight}-normal.woff2"
            if member in names:
                woff2 = tar.extractfile(member).read()
                return {"id": font["id"], "family": font["family"], "package": f"{package}@{version}",
                        "file": member.removeprefix("package/"), "sha256": hashlib.sha256(woff2).hexdigest(),
                        "license": font.get("license", {}).get("type", "OFL-1.1")}  # fmt: skip
    return None


def main() -> None:
    fonts = [f for f in catalogue().values()
             if f.get("category") == "handwriting" and "latin" in f["subsets"] and "normal" in f["styles"]
             and not f["id"].endswith("-guides") and f["id"] not in HELD_OUT]  # fmt: skip
    with ThreadPoolExecutor(16) as pool:
        entries = [e for e in pool.map(entry, sorted(fonts, key=lambda f: f["id"])) if e is not None]
    OUT.write_text(json.dumps({"catalogue": CATALOGUE, "fonts": entries}, indent=1) + "\n")
    print(f"{len(entries)} of {len(fonts)} families -> {OUT}")


if __name__ == "__main__":
    main()
