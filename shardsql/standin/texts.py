"""Texts shaped like each built-in dataset's: their lengths, with the real sets' long tails, and their form.

The demo's sample (`samples.write_sample(..., realistic=True)`) draws its documents here:
web and textbook prose in paragraphs, Python files with imports, functions and classes,
PubMed abstracts in BACKGROUND/METHODS/RESULTS/CONCLUSIONS sections. Lengths are log-normal
around each set's median, cut at `Shape.max_chars`, so that the sample has what filters on
length meet on the Hub: many short documents and a tail of tens of thousands of characters.

The words are drawn at random (Zipf-weighted), so the text reads as nonsense, but it has
the right length, lines, punctuation and character mix. It is fast: each document is a
random choice of pre-built sentences (code: of pre-built blocks), so that `demo --serve`'s
sample of every dataset (~220M characters) is made in about 2 s. Deterministic for a seed.
"""

from __future__ import annotations

import functools
import math
import random
import sys
from array import array
from dataclasses import dataclass


@dataclass(frozen=True)
class Shape:
    """How a dataset's texts are distributed, in characters, and what they look like."""

    median_chars: int
    sigma: float  # of the natural log of the length: the tail's weight
    max_chars: int
    kind: str  # "prose", "textbook", "code", "abstract"


# Medians and spreads from the real sets (characters; the mean is median * exp(sigma^2 / 2)
# before the cut): FineWeb-Edu's sample/10BT averages about
# 1,000 GPT-2 tokens (~4.7k characters) a document, FineWeb's ~700; Cosmopedia v2's generated
# textbooks ~3.3k characters, in a narrow band; SlimPajama ~4k, with books far longer; a
# Python file of github-code-clean ~4-5k; a PubMed abstract ~1.5k.
SHAPES: dict[str, Shape] = {
    "edu": Shape(2_900, 0.98, 120_000, "prose"),
    "web": Shape(1_900, 1.05, 120_000, "prose"),
    "cosmo": Shape(3_000, 0.45, 16_000, "textbook"),
    "pajama": Shape(2_000, 1.25, 120_000, "prose"),
    "code": Shape(2_400, 1.1, 100_000, "code"),
    "pubmed": Shape(1_450, 0.35, 8_000, "abstract"),
}

_PROSE = (
    "the of and to a in is that for it as with was on be by this are or from at which an have not "
    "they their but can more has one were all also other been its many these when there some into "
    "students learning school teachers children history energy system water health research data "
    "important example because however during between different century people world development "
    "process study information environment science language community education support provide "
    "change knowledge plants animals climate disease cells body river government culture economic "
    "natural social public early human years program skills reading writing math class understand "
    "experience activities lesson practice soil light heat earth ocean species growth literature "
    "teacher question answer problem solution method evidence theory experiment results effect "
    "century war empire trade city region population family women men children's national local "
    "computer technology internet software online digital network design engineering materials "
    "may will should would could often usually typically generally especially particularly also"
).split()
_TEXTBOOK = (
    "chapter section concept example consider imagine let's explore understand key idea first "
    "next finally therefore thus step principle definition theorem equation function variable "
    "student learner reader practice exercise review summary introduction conclusion lesson unit"
).split()
_MEDICAL = (
    "patients treatment study clinical risk associated cells expression protein disease cancer "
    "group compared significantly increased decreased levels analysis outcomes mortality cohort "
    "therapy dose trial randomized controlled effect response tumor gene receptor infection "
    "children adults women mice rats model samples serum plasma blood tissue mechanism pathway "
    "inflammation diagnosis prognosis survival incidence prevalence factors age years months "
    "observed evaluated measured assessed identified reported demonstrated suggest indicate "
    "the of and in to with a was were for by from that on as at is between after these than"
).split()
_FOREIGN = "数据 学习 能量 История данные обучение المعرفة والتعلم é ñ ü café naïve 🚀 👍🏽".split()
_SECTIONS = ("BACKGROUND", "OBJECTIVE", "METHODS", "RESULTS", "CONCLUSIONS")
_NAMES = (
    "data value item items result results path name config count index key line lines text row rows "
    "node nodes user users request response client session model batch size total buffer record "
    "records parser token tokens cache options args kwargs level score offset limit start end"
).split()
_VERBS = "get set load save parse build make read write update compute check validate process handle".split()
_MODULES = (
    "os sys re json math time logging random itertools functools collections typing pathlib "
    "subprocess argparse datetime dataclasses numpy pandas requests torch unittest"
).split()
_POOL = 8_192  # sentences (code: a quarter as many blocks) per kind: documents draw from them
_WIDE = 1 << 16  # draws are 16-bit numbers, indexing a pool repeated to this many entries


def _draw(rng: random.Random, wide: tuple[str, ...], k: int) -> list[str]:
    """`k` entries of `wide` (`_WIDE` of them), uniformly at random, in one call: ten times
    quicker than `rng.choices`, which draws the sample's millions of sentences one by one."""
    index = array("H", rng.randbytes(2 * k))
    if sys.byteorder == "big":  # the same texts on every machine
        index.byteswap()
    return list(map(wide.__getitem__, index))


@functools.cache
def _zipf(kind: str) -> tuple[str, ...]:
    """`kind`'s words repeated to `_WIDE` entries by their Zipf-Mandelbrot weights, for `_draw`:
    the first words the most frequent ("the" about 4% of all, as in English)."""
    words = {"prose": _PROSE, "textbook": _PROSE + _TEXTBOOK, "abstract": _MEDICAL}[kind]
    weights = [1 / (rank + 8) for rank in range(len(words))]
    total = sum(weights)
    counts = [max(1, round(w / total * _WIDE)) for w in weights]
    table = [word for word, n in zip(words, counts, strict=True) for _ in range(n)]
    return tuple((table + table)[:_WIDE])


def _sentence(rng: random.Random, words: tuple[str, ...], lo: int, hi: int) -> str:
    chosen = _draw(rng, words, rng.randint(lo, hi))
    if len(chosen) > 3 and rng.random() < 0.3:  # a clause
        chosen[rng.randrange(1, len(chosen) - 1)] += ","
    if rng.random() < 0.1:  # a number or a year
        chosen.insert(rng.randrange(len(chosen)), str(rng.choice([rng.randint(2, 99), rng.randint(1800, 2024)])))
    return chosen[0].capitalize() + " " + " ".join(chosen[1:]) + rng.choice("....?!")


@functools.cache
def _sentences(kind: str) -> tuple[str, ...]:
    """A pool of sentences for `kind` (prose, textbook, abstract), the same every time."""
    rng = random.Random(f"sentences-{kind}")
    if kind == "abstract":
        words = _zipf(kind)
        pool = []
        for _ in range(_POOL):
            s = _sentence(rng, words, 8, 30)
            if rng.random() < 0.25:  # the figures abstracts report
                s = s[:-1] + f" (n = {rng.randint(12, 4000)}, p < 0.0{rng.randint(1, 5)})."
            pool.append(s)
        return tuple(pool)
    words = _zipf(kind)
    pool = [_sentence(rng, words, 4, 32) for _ in range(_POOL)]
    if kind == "prose":  # web text is not all English
        for i in range(0, _POOL, 200):
            pool[i] = " ".join(rng.choices(_FOREIGN, k=rng.randint(3, 12))) + "."
    return tuple(pool)


def _block(rng: random.Random) -> str:
    """One top-level block of a Python file: a function or a class."""
    name = f"{rng.choice(_VERBS)}_{rng.choice(_NAMES)}"
    args = rng.sample(_NAMES, rng.randint(0, 3))
    words = _zipf("prose")
    doc = _sentence(rng, words, 4, 14)
    body = []
    for _ in range(rng.randint(1, 8)):
        var, other = rng.choice(_NAMES), rng.choice(args or _NAMES)
        body += rng.choice(
            [
                [f"{var} = {other}.{rng.choice(_VERBS)}({rng.choice(_NAMES)})"],
                [f"for {var} in {other}:", f"    if {var} is None:", "        continue", f"    total += len({var})"],
                [f"if not {other}:", f'    raise ValueError("{rng.choice(_NAMES)} is required")'],
                [f"{var} = [x for x in {other} if x > {rng.randint(0, 100)}]"],
                [f"# {_sentence(rng, words, 3, 10)}"],
                [f'logger.debug("%s: %d", {other!r}, {rng.randint(0, 9)})'],
                [
                    "try:",
                    f"    {var} = {other}[{rng.randint(0, 9)}]",
                    "except (KeyError, IndexError):",
                    f"    {var} = None",
                ],
            ]
        )
    body.append(f"return {rng.choice(_NAMES)}")
    if rng.random() < 0.3:  # a class with it as a method
        method = [f"    def {name}(self{''.join(', ' + a for a in args)}):", f'        """{doc}"""']
        method += ["        " + line for line in body]
        init = ["    def __init__(self, config=None):", "        self.config = config or {}"]
        return "\n".join([f"class {name.title().replace('_', '')}:", *init, "", *method])
    lines = [f"def {name}({', '.join(args)}):", f'    """{doc}"""'] + ["    " + line for line in body]
    return "\n".join(lines)


@functools.cache
def _blocks() -> tuple[str, ...]:
    rng = random.Random("blocks-code")
    return tuple(_block(rng) for _ in range(_POOL // 4))


@functools.cache
def _wide(kind: str) -> tuple[str, ...]:
    """`kind`'s pool (sentences; code: blocks) repeated to `_WIDE` entries, for `_draw`."""
    pool = _blocks() if kind == "code" else _sentences(kind)
    return pool * (_WIDE // len(pool))


@functools.cache
def _mean(kind: str) -> float:
    """The mean length of `kind`'s sentences (code: of its blocks)."""
    pool = _blocks() if kind == "code" else _sentences(kind)
    return sum(map(len, pool)) / len(pool)


def length(shape: Shape, rng: random.Random) -> tuple[int, float]:
    """A document's length in characters, and the standard normal it came from."""
    z = rng.gauss(0.0, 1.0)
    return max(1, min(shape.max_chars, int(shape.median_chars * math.exp(shape.sigma * z)))), z


def document(shape: Shape, chars: int, rng: random.Random) -> str:
    """A document of about `chars` characters, shaped like `shape`'s."""
    if shape.kind == "code":
        head = "\n".join(f"import {m}" for m in rng.sample(_MODULES, rng.randint(1, 5)))
        if rng.random() < 0.4:
            head = f'"""{rng.choice(_sentences("prose"))}"""\n\n' + head
        k = max(1, round((chars - len(head)) / (_mean("code") + 3)))
        text = head + "\n\n\n" + "\n\n\n".join(_draw(rng, _wide("code"), k)) + "\n"
        if rng.random() < 0.2:
            text += '\n\nif __name__ == "__main__":\n    main()\n'
        return text
    sentences = _wide(shape.kind)
    k = max(1, round(chars / (_mean(shape.kind) + 1)))
    if shape.kind == "abstract":
        if rng.random() < 0.3:  # unstructured
            return " ".join(_draw(rng, sentences, k))
        k = max(k, 4)  # a sentence or more a section
        chosen = _draw(rng, sentences, k)
        cuts = sorted(rng.sample(range(1, k), 3))
        parts = [chosen[a:b] for a, b in zip([0, *cuts], [*cuts, k], strict=True)]
        labels = [rng.choice(_SECTIONS[:2]), *_SECTIONS[2:]]
        return " ".join(f"{label}: {' '.join(part)}" for label, part in zip(labels, parts, strict=True))
    chosen = _draw(rng, sentences, k)
    step = rng.randint(3, 7)  # sentences a paragraph
    paragraphs = [" ".join(chosen[i : i + step]) for i in range(0, k, step)]
    if shape.kind == "textbook":
        heading = f"# Chapter {rng.randint(1, 12)}: {' '.join(w.capitalize() for w in rng.sample(_TEXTBOOK, 3))}"
        paragraphs.insert(0, heading)
        for i in range(4, len(paragraphs), 5):
            paragraphs[i] = f"## {rng.choice(_TEXTBOOK).capitalize()} {i // 5 + 1}\n\n" + paragraphs[i]
    return "\n\n".join(paragraphs)
