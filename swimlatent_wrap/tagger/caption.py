"""Probabilities → one caption line, by the caption convention (DESIGN.md):

    prefix tags, [the most likely rating tag, only when asked], character tags with
    p ≥ character threshold, general tags with p ≥ general threshold, each group by
    descending probability, joined by ", ".

Tags are written with "_" → " ", except tags of 3 characters or fewer (kaomoji such as
``^_^``), as sd-scripts' ``--remove_underscore`` does. The blacklist and the check against
repeating a prefix tag compare written forms; blacklist and prefix entries are normalised the
same way first, so ``long_hair`` and ``long hair`` both name the tag written "long hair".
Pure Python: no numpy, so the rule can be tested and reused anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from swimlatent_wrap.tagger.labels import CHARACTER, GENERAL, RATING, Labels

SEPARATOR = ", "


def written_form(tag: str) -> str:
    """How a tag appears in a caption: underscores become spaces, except in kaomoji (≤ 3 characters)."""
    return tag if len(tag) <= 3 else tag.replace("_", " ")


@dataclass(frozen=True)
class CaptionRule:
    """Everything that decides a caption besides the probabilities (the recipe's [captions])."""

    prefix: tuple[str, ...]
    general_threshold: float
    character_threshold: float
    blacklist: tuple[str, ...]
    rating_tag: bool

    @property
    def floor(self) -> float:
        """The lowest probability that can put a tag into a caption."""
        return min(self.general_threshold, self.character_threshold)


def caption_tags(scores: Mapping[int, float], labels: Labels, rule: CaptionRule) -> list[str]:
    """The caption's tags in order. ``scores`` maps output index → probability; indices left out
    count as below every threshold (callers pass only the candidates, plus the rating outputs)."""
    prefix = [tag.strip() for tag in rule.prefix if tag.strip()]
    taken = {written_form(tag) for tag in prefix}
    banned = {written_form(tag.strip()) for tag in rule.blacklist}
    tags = list(prefix)

    def add(index: int) -> None:
        text = written_form(labels.names[index])
        if text not in taken and text not in banned:
            taken.add(text)
            tags.append(text)

    if rule.rating_tag:
        ratings = [i for i in scores if labels.categories[i] == RATING]
        if ratings:
            # max() keeps the first of equal probabilities: model order breaks ties.
            add(max(sorted(ratings), key=lambda i: scores[i]))
    for category, threshold in ((CHARACTER, rule.character_threshold), (GENERAL, rule.general_threshold)):
        passed = [i for i, p in scores.items() if labels.categories[i] == category and p >= threshold]
        for index in sorted(passed, key=lambda i: (-scores[i], i)):
            add(index)
    return tags


def caption_line(scores: Mapping[int, float], labels: Labels, rule: CaptionRule) -> str:
    """The caption file's text, without the trailing newline."""
    return SEPARATOR.join(caption_tags(scores, labels, rule))
