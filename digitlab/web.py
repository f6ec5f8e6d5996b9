"""The drawing page without a server: `digitlab export RUN --format web --out DIR` writes a static folder.

The folder runs the run's model in the browser with onnxruntime-web (WebAssembly, one thread) and works from any
static host or straight from disk (`file://`):

    index.html        the drawing page (static/draw.html, the same page the server shows)
    preprocess.js     the MNIST-style preprocessing (static/preprocess.js: preprocess.py's specification, ported)
    ort.wasm.min.js   onnxruntime-web's classic-script build, verbatim from its npm package
    ort-runtime.js    onnxruntime-web's WebAssembly binary and its loader, wrapped in a script
    model.js          the ONNX model, wrapped in a script;  model.onnx  the same model as a plain file
    digitlab-web.json what the folder holds: run, epoch, onnxruntime-web version, files and their SHA-256

Browsers refuse `fetch` and module imports from `file://` pages, but run classic `<script src>` files; so the
binary parts travel base64-encoded inside scripts, and the loader module is imported from a blob URL.

onnxruntime-web comes from its npm package (`npm pack onnxruntime-web@ORT_VERSION`, no CDN), checked against the
registry's SHA-512 integrity and cached beside the datasets; `--ort-package FILE.tgz` uses a tarball at hand instead.
The folder is written under a temporary name and renamed when complete; `--force` replaces only an earlier export.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tarfile
import tempfile
from pathlib import Path

from .checkpoint import load_checkpoint
from .datasets import data_root, npm_pack
from .errors import DataError, DigitlabError
from .export import onnx_graph, verify_onnx
from .files import atomic_write
from .runs import model_path

ORT_VERSION = "1.30.0"
ORT_INTEGRITY = "sha512-q0y+JrrtukXSzsBWEMccVfqX25LRmosXHF+CaRJmg8pZClzcV7svNc4rKY3jL02Vb7QmRMDs1SigqR4CXAfKYQ=="
ORT_FILES = {  # member of the npm tarball -> what the export needs it for
    "package/dist/ort.wasm.min.js": "runtime",
    "package/dist/ort-wasm-simd-threaded.mjs": "loader",
    "package/dist/ort-wasm-simd-threaded.wasm": "binary",
    "package/package.json": "license",
}
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # the WebAssembly binary is 14 MB
STATIC = Path(__file__).parent / "static"
MANIFEST = "digitlab-web.json"
SCRIPTS_MARK = "<!-- digitlab:scripts -->"


def ort_tarball(package: str | Path | None) -> Path:
    """The onnxruntime-web npm tarball: `package` when given, else the cached one, else `npm pack` into the cache."""
    if package is not None:
        path = Path(package)
        if not path.is_file():
            raise DigitlabError(f"--ort-package {path}: no such file (expected onnxruntime-web-{ORT_VERSION}.tgz)")
        return check_integrity(path)
    cached = data_root() / "npm" / f"onnxruntime-web-{ORT_VERSION}.tgz"
    if cached.is_file():
        return check_integrity(cached)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="digitlab-npm-", dir=cached.parent) as tmp:
        print(f"digitlab: fetching onnxruntime-web@{ORT_VERSION} from the npm registry", flush=True)
        try:
            fetched = npm_pack(f"onnxruntime-web@{ORT_VERSION}", Path(tmp))
        except DigitlabError as e:
            raise DigitlabError(f"{e} (the web export needs it; or pass --ort-package with the tarball)") from None
        check_integrity(fetched).replace(cached)
    return cached


def check_integrity(path: Path) -> Path:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if "sha512-" + base64.b64encode(digest.digest()).decode() != ORT_INTEGRITY:
        raise DataError(path, None, f"not onnxruntime-web {ORT_VERSION}'s npm tarball (SHA-512 differs)")
    return path


def ort_files(tarball: Path) -> dict[str, bytes]:
    """The members export needs, read by name (nothing else in the tarball is extracted)."""
    found = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for member in archive:
            if member.name in ORT_FILES and member.isfile() and member.size <= MAX_MEMBER_BYTES:
                found[ORT_FILES[member.name]] = archive.extractfile(member).read()
    missing = set(ORT_FILES.values()) - set(found)
    if missing:
        raise DataError(tarball, None, f"the tarball lacks {sorted(missing)}")
    return found


def as_script(variable: str, value: dict) -> bytes:
    """A classic script that sets window[variable] to a JSON value (binary parts already base64 text)."""
    return f"window.{variable} = {json.dumps(value)};\n".encode()


def page_html() -> bytes:
    """The server's drawing page with the offline scripts in place of its marker."""
    scripts = "\n".join(
        f'<script src="{name}"></script>' for name in ("ort.wasm.min.js", "ort-runtime.js", "model.js", "preprocess.js")
    )
    page = (STATIC / "draw.html").read_text()
    if SCRIPTS_MARK not in page:
        raise DigitlabError("static/draw.html lacks its scripts marker (a broken installation)")
    return page.replace(SCRIPTS_MARK, scripts).encode()


def folder_files(run: str | Path, ort: dict[str, bytes], onnx_bytes: bytes) -> dict[str, bytes]:
    source = model_path(run)
    _, _, info, _ = load_checkpoint(source)
    identity = {"engine": "onnxruntime-web", "model": f"{Path(run).name}/{source.name}", "epoch": info.get("epoch")}
    license_name = json.loads(ort["license"]).get("license", "MIT")
    return {
        "index.html": page_html(),
        "preprocess.js": (STATIC / "preprocess.js").read_bytes(),
        "ort.wasm.min.js": ort["runtime"],
        "ort-runtime.js": as_script(
            "DIGITLAB_ORT", {"mjs": ort["loader"].decode(), "wasm": base64.b64encode(ort["binary"]).decode()}
        ),
        "model.js": as_script("DIGITLAB_MODEL", {"onnx": base64.b64encode(onnx_bytes).decode(), "identity": identity}),
        "model.onnx": onnx_bytes,
        "NOTICE.txt": f"ort.wasm.min.js and ort-runtime.js: onnxruntime-web {ORT_VERSION}, {license_name} licence, "
        f"(c) Microsoft Corporation (https://github.com/microsoft/onnxruntime).\n".encode(),
    }


def export_web(
    run: str | Path, out: str | Path | None, verify: bool = True, force: bool = False, ort_package=None
) -> dict:
    """Write the static drawing page for `run` to the folder `out`; returns what was written and the verification."""
    if not out:
        raise DigitlabError("--format web needs --out DIR: the folder to write the page into")
    out = Path(out)
    if out.exists() and not (force and (out / MANIFEST).is_file()):
        hint = "pass --force to replace it" if (out / MANIFEST).is_file() else "it is not an earlier web export"
        raise DigitlabError(f"--out {out} already exists: {hint}, or pick another --out")
    source = model_path(run)  # a missing run is reported before anything is fetched
    ort = ort_files(ort_tarball(ort_package))
    onnx_bytes, model, config = onnx_graph(source)
    files = folder_files(run, ort, onnx_bytes)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    partial.chmod(0o755)  # mkdtemp makes it private; a static host serves it to everyone
    try:
        for name, data in files.items():
            with atomic_write(partial / name) as f:
                f.write(data)
        manifest = {
            "run": str(run),
            "onnxruntime_web": ORT_VERSION,
            "files": {
                name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in files.items()
            },
        }
        with atomic_write(partial / MANIFEST) as f:
            f.write(json.dumps(manifest, indent=2).encode())
        verification = verify_onnx(partial / "model.onnx", model, config) if verify else {}
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return {"out": str(out), "bytes": sum(len(d) for d in files.values()), **verification}
