"""The caption convention (DESIGN.md), on hand-picked probabilities."""

from __future__ import annotations

from swimlatent_wrap.tagger.caption import CaptionRule, caption_line, written_form
from swimlatent_wrap.tagger.labels import Labels

LABELS = Labels(
    names=("general", "sensitive", "questionable", "explicit",
           "1girl", "long_hair", "^_^", "o_o", "x_y", "smile", "blue_sky", "hatsune_miku", "kaga_(kantai_collection)"),
    categories=(9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 4, 4),
)
I = {name: i for i, name in enumerate(LABELS.names)}


def rule(prefix=(), general=0.35, character=0.85, blacklist=(), rating=False) -> CaptionRule:
    return CaptionRule(tuple(prefix), general, character, tuple(blacklist), rating)


def test_prefix_then_characters_then_general_each_by_probability():
    s = {I["1girl"]: 0.99, I["long_hair"]: 0.6, I["smile"]: 0.8, I["blue_sky"]: 0.35, I["hatsune_miku"]: 0.86,
         I["kaga_(kantai_collection)"]: 0.97, I["general"]: 0.9, I["sensitive"]: 0.1}
    assert caption_line(s, LABELS, rule(["new", "newest", "masterpiece", "best quality"])) == (
        "new, newest, masterpiece, best quality, kaga (kantai collection), hatsune miku, 1girl, smile, long hair, blue sky")


def test_thresholds_are_inclusive_and_per_category():
    s = {I["smile"]: 0.5, I["long_hair"]: 0.4999999, I["hatsune_miku"]: 0.5, I["kaga_(kantai_collection)"]: 0.84}
    assert caption_line(s, LABELS, rule(general=0.5, character=0.5)) == "kaga (kantai collection), hatsune miku, smile"
    # A character at 0.84 passes a general threshold but not the character one.
    assert caption_line(s, LABELS, rule(general=0.3, character=0.85)) == "smile, long hair"


def test_underscores_become_spaces_except_in_tags_of_three_characters_or_fewer():
    assert written_form("long_hair") == "long hair"
    assert written_form("kaga_(kantai_collection)") == "kaga (kantai collection)"
    assert written_form("^_^") == "^_^"
    assert written_form("o_o") == "o_o"
    assert written_form("x_y") == "x_y"
    assert written_form("a_b_c") == "a b c"
    s = {I["^_^"]: 0.9, I["o_o"]: 0.8, I["x_y"]: 0.7}
    assert caption_line(s, LABELS, rule()) == "^_^, o_o, x_y"


def test_rating_tags_are_left_out_unless_asked_and_then_follow_the_prefix():
    s = {I["general"]: 0.2, I["sensitive"]: 0.7, I["questionable"]: 0.1, I["explicit"]: 0.05, I["smile"]: 0.9}
    assert caption_line(s, LABELS, rule(["new"])) == "new, smile"
    assert caption_line(s, LABELS, rule(["new"], rating=True)) == "new, sensitive, smile"


def test_blacklist_matches_the_written_form_and_the_tag_name():
    s = {I["long_hair"]: 0.9, I["smile"]: 0.8, I["^_^"]: 0.7, I["1girl"]: 0.6}
    assert caption_line(s, LABELS, rule(blacklist=["long hair", "^_^"])) == "smile, 1girl"
    assert caption_line(s, LABELS, rule(blacklist=["long_hair", " smile "])) == "^_^, 1girl"


def test_a_tag_already_in_the_prefix_is_not_repeated():
    s = {I["1girl"]: 0.99, I["long_hair"]: 0.9, I["smile"]: 0.5}
    assert caption_line(s, LABELS, rule(["1girl", "long hair", "masterpiece"])) == "1girl, long hair, masterpiece, smile"


def test_equal_probabilities_keep_the_model_order():
    s = {I["smile"]: 0.5, I["1girl"]: 0.5, I["long_hair"]: 0.5}
    assert caption_line(s, LABELS, rule()) == "1girl, long hair, smile"


def test_nothing_over_the_thresholds_and_no_prefix_is_an_empty_caption():
    assert caption_line({I["smile"]: 0.1, I["general"]: 0.9}, LABELS, rule()) == ""
