"""Content policy throughput and accuracy: texts/s through ``check_text``, images/s through the classifier at
512x512, the false-refusal rate on the benign corpus and the pass rate on the hostile corpus.

Texts: the benign, adult and hostile corpora of tests/data/policy, cycled; the target (issue 7) is >= 20,000
texts/s on the 2-core machine. The rate is given per CPU second of this process (what one core does; the
machine is shared, so wall time says more about the neighbours) and per wall second. Baseline: the same
texts through ``unicodedata.normalize('NFKC', text).casefold()`` alone, so the ratio says what the policy
costs on top of the cheapest normalisation. Images: scikit-image's astronaut and coffee at 512x512 (PNG), one
at a time, as generated images are screened; the model is loaded before timing (that cost is reported apart).

    .venv/bin/python -m benchmarks.bench_policy [--texts 50000] [--images 40]
"""

from __future__ import annotations

import argparse
import io
import time
import unicodedata
from collections.abc import Callable

from PIL import Image
from skimage import data as skdata

from orchestrator.policy import Context, PolicyMode, Rule, check_text
from orchestrator.policy.lexicon import load_lexicon, read_wordlists
from orchestrator.policy.screening import INTRA_OP_THREADS, ImageScreener, classifier
from tests.unit.policy.corpus import OBFUSCATIONS, hostile, lines


def _rate(run: Callable[[], None], count: int) -> tuple[float, float]:
    """(per CPU second, per wall second)."""
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return count / (time.process_time() - cpu), count / (time.perf_counter() - wall)


def texts_per_second(texts: list[str], count: int) -> None:
    """check_text against the NFKC + casefold baseline."""
    corpus = [texts[i % len(texts)] for i in range(count)]
    # An instance of the shipped lists of its own: the service remembers the findings of the texts it saw last
    # (for the shipped instance only), and this measures matching every text of the cycled corpus afresh.
    lexicon = load_lexicon(read_wordlists())
    check_text("warm-up", Context.PROMPT, lexicon=lexicon)

    def policy() -> None:
        for text in corpus:
            check_text(text, Context.PROMPT, lexicon=lexicon)

    def baseline() -> None:
        for text in corpus:
            unicodedata.normalize("NFKC", text).casefold()

    cpu, wall = _rate(policy, count)
    base_cpu, _ = _rate(baseline, count)
    print(f"check_text: {cpu:,.0f} texts/s per CPU second ({1e6 / cpu:.1f} us each), {wall:,.0f} per wall second")
    print(f"  baseline NFKC+casefold: {base_cpu:,.0f} texts/s; check_text costs {base_cpu / cpu:.1f}x that")
    print(f"  target >= 20,000 texts/s: {'met' if cpu >= 20_000 else 'NOT met'}")


def accuracy() -> None:
    """False refusals on the benign corpus (every mode), pass rates on the hostile corpus (every class)."""
    benign = lines("benign.txt")
    refused = sum(
        not check_text(t, Context.PROMPT, mode=mode, adult=adult).allowed
        for t in benign
        for mode, adult in ((PolicyMode.STRICT, False), (PolicyMode.PERMISSIVE, True))
    )
    print(f"benign corpus: {len(benign)} texts, {refused} false refusals ({refused / (2 * len(benign)):.1%})")
    adult = lines("adult.txt")
    as_minors = sum(check_text(t, Context.PROMPT).rule is Rule.MINORS_SEXUAL for t in adult)
    print(f"adult corpus: {len(adult)} texts, {as_minors} taken for the minors rule")
    texts = hostile()
    caught = [h for h in texts if check_text(h.text, Context.PROMPT).rule is Rule.MINORS_SEXUAL]
    print(
        f"hostile corpus: {len(texts)} texts, {len(caught)} refused by the minors rule ({len(caught) / len(texts):.1%})"
    )
    for name in OBFUSCATIONS:
        of_class = [h for h in texts if h.obfuscation == name]
        hits = sum(h in caught for h in of_class)
        print(f"  {name:<11} {hits}/{len(of_class)}")


def images_per_second(count: int) -> None:
    """The classifier on 512x512 PNGs, one at a time."""
    samples = []
    for array in (skdata.astronaut(), skdata.coffee()):
        buffer = io.BytesIO()
        Image.fromarray(array).resize((512, 512)).save(buffer, "PNG")
        samples.append(buffer.getvalue())
    started = time.perf_counter()
    classifier()
    load_s = time.perf_counter() - started
    screener = ImageScreener(0.6)
    screener.screen(samples[0])

    def screen() -> None:
        for index in range(count):
            screener.screen(samples[index % len(samples)])

    cpu, wall = _rate(screen, count)
    print(f"classifier (open_nsfw, onnxruntime CPU) at 512x512: {wall:.1f} images/s wall ({1000 / wall:.0f} ms each)")
    threads = f"{INTRA_OP_THREADS} onnxruntime thread(s) per image"
    print(f"  {cpu:.1f} images per CPU second ({threads}); model load {load_s:.2f} s, once")


def main() -> None:
    """Parse arguments, print figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--images", type=int, default=40)
    args = parser.parse_args()
    corpus = lines("benign.txt") + lines("adult.txt") + [h.text for h in hostile()]
    texts_per_second(corpus, args.texts)
    accuracy()
    images_per_second(args.images)


if __name__ == "__main__":
    main()
