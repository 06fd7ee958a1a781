"""Every example in README.md and docs/*.md runs as written (issue 19).

Every code example in the docs is a fenced block with a language tag: `sh` blocks run in
`bash -e -o pipefail`, `python` blocks in a Python interpreter, `text`/`json`/`csv` blocks (output
samples, file formats, layouts, diagrams) are shown only. `test_every_example_is_fenced_and_tagged`
fails on an indented code block or an unknown tag, so no example escapes the test.

Each page runs in its own temporary working folder, its blocks in page order: an example that
builds on an earlier one (train -> export -> predict) finds the earlier one's files. Running one
block (`-k "export.md and block3"`) first runs the page's earlier blocks. Before a block runs, its
text is rewritten by the substitution table below (small synthetic data for dataset paths, small
budgets). The rewriting never adds or removes lines, so a failure names the page's own line.

Substitution table (SUBSTITUTIONS):

| in the docs | runs as | why |
|---|---|---|
| `/data/celeba` | a 64-image synthetic CelebA set (`attrnet.data.synth.generate`, seed 0) | no real dataset here |
| `/data/Market-1501` | a 64-image synthetic Market-1501 set | idem |
| `/data/df` | a 64-image synthetic DeepFashion set | idem |
| `/data/faces` | a `folder:` set: 16 of those faces + the `labels.csv` columns data.md shows | idem |
| `/tmp/...` | `<working folder>/tmp/...` | no writes outside the test's folders |
| `--num N` | `--num 64` | synthetic sets of 64 images |
| `attrnet train ...` | `... --epochs 1` (replacing any `--epochs`) | one epoch is enough to exercise a command |
| `epochs=N` (Python) | `epochs=1` | idem |
| `attrnet benchmark ...` | `... --iters 2 --warmup 1` | a timing loop of 2 batches |
| `make demo` | `make -C <repo> demo DEMO=<working folder>/demo` | the Makefile is in the repository |
| `python benchmarks/...`, `bash benchmarks/...`, `.venv/bin/python` | the repository's script, this interpreter | run from the working folder |

Files every working folder starts with: `runs/x/` (the shipped default model, a trained `tiny`,
as `best.safetensors` and `best.onnx`), `photos/`, `images/`, `crops/` (8 JPEG faces each),
`a.jpg`, `x.jpg`, `face.jpg`, `b.png`, `todo.txt` (a list of photos), `cams/clip.mp4` (12 frames),
`groups.json` (the set's planted groups) and, when a block names it, `vgg16.pth`: a state dict
with torchvision VGG-16's layer names and layout but 64 filters per conv and 128 fc units (random;
the real file is 528 MB and needs a download).

PREPARE lists the few blocks that need something done to the working folder first, and why.

Not run: a block whose first line is `# not run by tests/test_docs.py: REASON` (TensorRT, a GPU,
several machines, a download, ...) is checked for syntax only (`bash -n`, `compile`) and skipped
with that reason, which the page shows next to the example. SLOW lists the blocks that take more
than a few seconds; they run with `-m slow`.

Re-run: `.venv/bin/python -m pytest -q -p no:cacheprovider tests/test_docs.py [-k README.md] [-m slow]`.
A failure names the page, the block, the page's line of the failing command, the command as run,
its exit code and the tail of its stderr; the working folder is kept (the message names it).
`attrnet` runs in processes forked from one interpreter that imported torch once
(tests/docs_forkserver.py); ATTRNET_DOCS_FRESH=1 starts a fresh `attrnet` process for every
command instead (the installed console script; a few minutes slower).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from docs_examples import BlockRunner, Example, Outcome, read_examples, set_option, substitute

ROOT = Path(__file__).resolve().parents[1]

# (pattern or label, replacement: text with {data} {tmp} {repo} {work} {python}, or a function of the text)
SUBSTITUTIONS = [
    (r"(?<![\w.])/tmp/", "{tmp}/"),  # first: the paths put in by the rules below may be under /tmp
    (r"/data/celeba\b", "{data}/celeba"),
    (r"/data/Market-1501\b", "{data}/Market-1501"),
    (r"/data/df\b", "{data}/deepfashion"),
    (r"/data/faces\b", "{data}/faces"),
    (r"--num \d+", "--num 64"),
    ("attrnet train: --epochs 1", lambda text: set_option(text, r"\battrnet train\b", "--epochs", "1")),
    (r"\bepochs=\d+", "epochs=1"),
    ("attrnet benchmark: --iters 2", lambda text: set_option(text, r"\battrnet benchmark\b", "--iters", "2")),
    ("attrnet benchmark: --warmup 1", lambda text: set_option(text, r"\battrnet benchmark\b", "--warmup", "1")),
    (r"(?m)^make demo\b", "make -C {repo} demo DEMO={work}/demo"),
    (r"\b(python|bash) benchmarks/", r"\1 {repo}/benchmarks/"),
    (r"(?<![\w/])\.venv/bin/python\b", "{python}"),
]

# page -> {text in the block: why it runs only with -m slow}
TASKONOMY_ALL = "40 source encoders and 1600 readouts"
LOCAL_RAY = "starts a local Ray (tens of seconds)"
SLOW = {
    "README.md": {"make demo": "the whole demo: 4000 images, 12 epochs, two exports",
                  "--preset market --arch resnet50": "resnet50 at 256x128",
                  "--somp-from vgg16.pth": "vgg16-thin at 218x178 (the celeba preset)",
                  "attrnet taskonomy": TASKONOMY_ALL},
    "docs/taskonomy.md": {"attrnet taskonomy": TASKONOMY_ALL, "analyse(Settings(": TASKONOMY_ALL},
    "docs/benchmark.md": {"attrnet benchmark --model runs/x/best.safetensors\n": "every backend, precision and batch size",
                          "benchmarks/run.py --suite cpu": "the benchmark suite (minutes)",
                          "DRY_RUN=1": "the GPU check's dry run (minutes)"},
    "docs/fafs.md": {"# Branch-32-1.0": "three vgg16-thin runs at 224x224"},
    "docs/scale.md": {"--ray": LOCAL_RAY, "import ray": LOCAL_RAY},
}

# (page, text in the block) -> (what is done to the working folder before the block runs, function of the folder)
PREPARE = {
    ("README.md", "--precision int8 --data celeba:/data/celeba"): (
        "runs/x/best.safetensors becomes the shipped model: the one-epoch FAFS model of the page's first block is "
        "nearly constant, so int8 flips decisions at thresholds that sit between almost equal scores",
        lambda folder: _shipped_model(folder / "runs" / "x")),
}

EXAMPLES, MARKUP_PROBLEMS = read_examples(ROOT)
SHARED_IMAGES = 8


def slow_reason(example: Example) -> str | None:
    return next((why for text, why in SLOW.get(example.page, {}).items() if text in example.text), None)


@dataclass
class Page:
    """A page's working folder and the outcomes of the blocks run in it so far."""

    folder: Path
    done: dict[int, Outcome] = field(default_factory=dict)


class DocsWorld:
    """The shared synthetic data, the fork server and one working folder per page."""

    def __init__(self, base: Path, runner: BlockRunner) -> None:
        self.base, self.runner = base, runner
        self.data, self.files = base / "data", base / "files"
        self.pages: dict[str, Page] = {}

    def build(self) -> None:
        from attrnet.data.synth import generate

        generate("celeba", self.data / "celeba", num=64, seed=0)
        generate("market", self.data / "Market-1501", num=64, seed=0)
        generate("deepfashion", self.data / "deepfashion", num=64, seed=0)
        faces = sorted((self.data / "celeba" / "img_align_celeba").glob("*.jpg"))
        _folder_dataset(faces[:16], self.data / "faces")
        _image_files(faces[:SHARED_IMAGES], self.files)
        shutil.copy(self.data / "celeba" / "synth_groups.json", self.files / "groups.json")
        _shipped_model(self.files / "runs" / "x")
        self.runner.wait_ready()

    def page(self, name: str) -> Page:
        if name not in self.pages:
            folder = self.base / "pages" / name.replace("/", "-")
            shutil.copytree(self.files, folder)
            (folder / "tmp").mkdir()
            self.pages[name] = Page(folder)
        return self.pages[name]

    def run(self, example: Example) -> Outcome:
        page = self.page(example.page)
        if example.number not in page.done:
            for (name, text), (_why, prepare) in PREPARE.items():
                if name == example.page and text in example.text:
                    prepare(page.folder)
            if "vgg16.pth" in example.text and not (page.folder / "vgg16.pth").exists():
                _small_vgg16(page.folder / "vgg16.pth")
            values = {"data": str(self.data), "tmp": str(page.folder / "tmp"), "repo": str(ROOT),
                      "work": str(page.folder), "python": sys.executable}
            text = substitute(example.text, SUBSTITUTIONS, values)
            timeout = 1800 if slow_reason(example) else 300
            page.done[example.number] = self.runner.run(example.tag, text, page.folder, example.line + 1, timeout,
                                                        f"{example.page}-block{example.number}")
        return page.done[example.number]


def _shipped_model(run: Path) -> None:
    """runs/x: the shipped default model (a trained `tiny`) as best.safetensors and best.onnx."""
    from attrnet.weights import default_checkpoint, default_onnx

    run.mkdir(parents=True, exist_ok=True)
    shutil.copy(default_checkpoint(), run / "best.safetensors")
    shutil.copy(default_onnx(), run / "best.onnx")


def _image_files(faces: list[Path], folder: Path) -> None:
    """photos/, images/, crops/, single files, a list file and a short video."""
    import cv2

    for name in ("photos", "images", "crops"):
        (folder / name).mkdir(parents=True)
        for face in faces:
            shutil.copy(face, folder / name / face.name)
    for name, face in zip(("a.jpg", "x.jpg", "face.jpg"), faces):
        shutil.copy(face, folder / name)
    cv2.imwrite(str(folder / "b.png"), cv2.imread(str(faces[3])))
    (folder / "todo.txt").write_text("".join(f"photos/{face.name}\n" for face in faces[:4]))
    (folder / "cams").mkdir()
    video = cv2.VideoWriter(str(folder / "cams" / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 64))
    for i in range(12):
        video.write(cv2.resize(cv2.imread(str(faces[i % len(faces)])), (64, 64)))
    video.release()
    if not cv2.VideoCapture(str(folder / "cams" / "clip.mp4")).read()[0]:
        raise RuntimeError("OpenCV could not write an mp4 video for the docs test")


def _folder_dataset(faces: list[Path], folder: Path) -> None:
    """A `folder:` dataset with the columns of docs/data.md's labels.csv example."""
    (folder / "imgs").mkdir(parents=True)
    rows = ["path,Smiling,Eyeglasses,hair_color,split"]
    for i, face in enumerate(faces):
        shutil.copy(face, folder / "imgs" / face.name)
        split = ("train", "train", "val", "test")[i % 4]
        rows.append(f"imgs/{face.name},{i % 2},{'' if i % 5 == 0 else (i // 2) % 2},"
                    f"{('black', 'blond', '')[i % 3]},{split}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")


def _small_vgg16(path: Path) -> None:
    """torchvision VGG-16's state-dict layout (13 conv, 3 fc) at 64 filters and 128 fc units."""
    import torch

    generator = torch.Generator().manual_seed(0)
    convs = [3] + [64] * 13
    features = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    state = {}
    for layer, (c_in, c_out) in zip(features, zip(convs, convs[1:])):
        state[f"features.{layer}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=generator) * 0.1
        state[f"features.{layer}.bias"] = torch.zeros(c_out)
    for layer, (c_in, c_out) in zip((0, 3, 6), ((64 * 49, 128), (128, 128), (128, 1000))):
        state[f"classifier.{layer}.weight"] = torch.randn(c_out, c_in, generator=generator) * 0.05
        state[f"classifier.{layer}.bias"] = torch.zeros(c_out)
    torch.save(state, path)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsWorld]:
    runner = BlockRunner(fresh=os.environ.get("ATTRNET_DOCS_FRESH") == "1")
    try:
        docs = DocsWorld(tmp_path_factory.mktemp("docs"), runner)
        docs.build()
        yield docs
    finally:
        runner.close()


def report(example: Example, outcome: Outcome, page: Page, earlier: list[Example]) -> str:
    """Which file, block and line failed, the command as run, and the tail of its stderr."""
    lines = [f"{example.name} failed: " + (f"timed out after {outcome.seconds:.0f} s" if outcome.timed_out
                                          else f"exit code {outcome.returncode} after {outcome.seconds:.1f} s")]
    if outcome.failed_line is not None:
        doc_line = (ROOT / example.page).read_text(encoding="utf-8").splitlines()[outcome.failed_line - 1]
        lines.append(f"  {example.page}:{outcome.failed_line}: {doc_line.strip()}")
        marker = f"line {outcome.failed_line} failed: "
        if marker in outcome.stderr:
            lines.append(f"  ran: {outcome.stderr.split(marker)[-1].splitlines()[0]}")
    failed_before = [e.name for e in earlier if page.done.get(e.number) and page.done[e.number].returncode]
    if failed_before:
        lines.append(f"  (earlier blocks of the page that failed too: {'; '.join(failed_before)})")
    lines += [f"  working folder: {page.folder}", "  output (last lines):"]
    lines += [f"    {line}" for line in outcome.tail().splitlines()]
    return "\n".join(lines)


def check_syntax(example: Example) -> None:
    if example.tag == "python":
        compile(example.text, example.name, "exec")
    else:
        checked = subprocess.run(["bash", "-n"], input=example.text, text=True, capture_output=True)
        assert checked.returncode == 0, f"{example.name}: bash -n: {checked.stderr.strip()}"


@pytest.mark.parametrize("tag, text, expected", [
    ("sh", "attrnet data info celeba:/data/celeba\nattrnet export runs/x/best.safetensors --precisio fp16\n",
     "--precisio"),
    ("python", "from attrnet.export.pipeline import ExportOptions\nspec = InputSpec(64, 64)\n", "NameError"),
])
def test_a_broken_example_fails_naming_its_line(world: DocsWorld, tag: str, text: str, expected: str) -> None:
    """The runner does fail: a renamed flag or an undefined name, on the block's second line."""
    values = {"data": str(world.data), "tmp": "", "repo": str(ROOT), "work": "", "python": sys.executable}
    folder = world.page("self-test").folder
    outcome = world.runner.run(tag, substitute(text, SUBSTITUTIONS, values), folder, 11, 60, f"self-test-{tag}")
    assert outcome.returncode != 0 and expected in outcome.stderr
    assert outcome.failed_line == 12


def test_every_example_is_fenced_and_tagged() -> None:
    assert not MARKUP_PROBLEMS, "\n".join(MARKUP_PROBLEMS)


def _params() -> list:
    params = []
    for example in EXAMPLES:
        if not example.runs:
            continue
        marks = [pytest.mark.slow] if slow_reason(example) else []
        params.append(pytest.param(example, marks=marks,
                                   id=f"{example.page}-block{example.number}-line{example.line}"))
    return params


@pytest.mark.parametrize("example", _params())
def test_example_runs(example: Example, world: DocsWorld) -> None:
    reason = example.skip_reason
    if reason:
        check_syntax(example)
        pytest.skip(f"{example.name}: {reason}")
    slow = bool(slow_reason(example))
    earlier = [e for e in EXAMPLES if e.page == example.page and e.number < example.number and e.runs
               and not e.skip_reason and (slow or not slow_reason(e))]
    for before in earlier:
        world.run(before)
    outcome = world.run(example)
    if outcome.returncode or outcome.timed_out:
        pytest.fail(report(example, outcome, world.page(example.page), earlier), pytrace=False)
