"""The C (clean) action on free text, and which Code Meanings are vocabulary.

PS3.15 defines C as "replace with values of similar meaning known not to contain identifying
information". Free text cannot be known to be free of identifiers because the source's own
identifiers are absent from it (a description can name a relative, a colleague or a place),
so C is an allowlist, fail closed: a word survives only if it is provably vocabulary, from
``schemas/deid/clean_vocabulary.json`` (DICOM defined terms, anatomic regions, protocol and
report words, short numbers with units); every other word (a surname, a token, a long number,
a date) is dropped. When nothing is left the caller applies the attribute's fallback action.

Words are whitespace-separated; the brackets and punctuation around a word go with it, so
dropping ``(MRN`` leaves no stray ``(``; unmatched brackets and separators at the ends are
removed. Compounds joined by ``- / + _`` survive when every part is vocabulary or a number and
at least one part is a word (so ``T1-weighted`` stays and ``12/03`` goes).

Code Meanings of the schemes in ``schemas/deid/coding_schemes.json`` (PS3.16 Table 8-1) are
vocabulary; those of private or local schemes (``99...``, ``L``, a site's designator, none)
were written by the source and are free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from lakehouse import resources

VOCABULARY_FILE = "clean_vocabulary.json"
CODING_SCHEMES_FILE = "coding_schemes.json"
#: Code Meaning of a local-scheme code under the basic profile (and when cleaning leaves nothing).
REDACTED_MEANING = "REDACTED"

OUTER_PUNCTUATION = "()[]{}\"'.,;:!?"
COMPOUND_SPLIT = re.compile(r"[-/+_]")
SEPARATOR_TOKENS = frozenset({"-", "/", "+", "&", "=", ">", "<", "x"})
EDGE_SEPARATORS = " ,;:-/+&=<>."
BRACKETS = {")": "(", "]": "["}
SCHEME_VERSION = re.compile(r"\s*\[.*\]\s*$")


@dataclass(frozen=True)
class Vocabulary:
    version: int
    words: frozenset[str]
    pattern: re.Pattern[str]  # numbers with units and the pattern rows, matched in full
    standard_schemes: frozenset[str]


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """The allowlist and the standard coding schemes (loaded once per process)."""
    data = resources.read_json("deid", VOCABULARY_FILE)
    schemes = resources.read_json("deid", CODING_SCHEMES_FILE)
    words = frozenset(w.casefold() for group in data["words"].values() for w in group)
    units = "|".join(re.escape(u.casefold()) for u in sorted(data["units"], key=lambda u: (-len(u), u)))
    number = rf"[+-]?\d{{1,3}}(?:[.,]\d{{1,3}})?(?:{units})?"
    alternatives = [number, *data["patterns"].values()]
    pattern = re.compile("|".join(f"(?:{a})" for a in alternatives))
    return Vocabulary(
        version=int(data["version"]),
        words=words,
        pattern=pattern,
        standard_schemes=frozenset(schemes["standard"]),
    )


def is_standard_scheme(designator: str) -> bool:
    """Whether Code Meanings of this Coding Scheme Designator are standard vocabulary."""
    name = SCHEME_VERSION.sub("", designator.strip())
    return name in vocabulary().standard_schemes


@lru_cache(maxsize=8192)  # pure; descriptions repeat across the instances of a series
def clean_text(text: str) -> str:
    """Only the vocabulary of ``text`` (see the module docstring); "" when none is left."""
    vocab = vocabulary()
    kept = [token for token in text.split() if _is_kept(token, vocab)]
    kept = _drop_stray_separators(kept)
    cleaned = _balance_brackets(" ".join(kept)).strip(EDGE_SEPARATORS)
    return cleaned if any(ch.isalnum() for ch in cleaned) else ""


def _is_kept(token: str, vocab: Vocabulary) -> bool:
    core = token.strip(OUTER_PUNCTUATION).casefold()
    if not core:
        return False
    if core in SEPARATOR_TOKENS:
        return True
    if _is_vocabulary(core, vocab):
        return True
    parts = [p for p in COMPOUND_SPLIT.split(core) if p]
    return (
        len(parts) > 1
        and all(_is_vocabulary(p, vocab) for p in parts)
        and any(p in vocab.words for p in parts)
    )


def _is_vocabulary(word: str, vocab: Vocabulary) -> bool:
    return word in vocab.words or vocab.pattern.fullmatch(word) is not None


def _drop_stray_separators(tokens: list[str]) -> list[str]:
    """No separator token next to another one (what is left when the words between went)."""
    out: list[str] = []
    for token in tokens:
        if token.strip(OUTER_PUNCTUATION).casefold() in SEPARATOR_TOKENS and (
            not out or out[-1].strip(OUTER_PUNCTUATION).casefold() in SEPARATOR_TOKENS
        ):
            continue
        out.append(token)
    while out and out[-1].strip(OUTER_PUNCTUATION).casefold() in SEPARATOR_TOKENS:
        out.pop()
    return out


def _balance_brackets(text: str) -> str:
    """Remove brackets without a partner (their partner was in a dropped word)."""
    keep = [True] * len(text)
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if ch in "([":
            stack.append((ch, i))
        elif ch in BRACKETS:
            if stack and stack[-1][0] == BRACKETS[ch]:
                stack.pop()
            else:
                keep[i] = False
    for _, i in stack:
        keep[i] = False
    return "".join(ch for ch, k in zip(text, keep, strict=True) if k)
