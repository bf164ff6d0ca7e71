"""IFEval through lm-eval's checkers: hand-made responses (pass and fail) and real rows."""

import hashlib
import json

import pytest

pytest.importorskip("lm_eval.tasks.ifeval.instructions_registry", reason="IFEval scoring needs lm-eval[ifeval]")

from jaxrlvr.data.tokenizer import CharTokenizer  # noqa: E402
from jaxrlvr.eval import instructions as ifeval  # noqa: E402

ROWS = ifeval.load_ifeval()
BY_KEY = {r["key"]: r for r in ROWS}


def _row(instruction_id, kwargs=None, prompt="Write something."):
    return {"key": 0, "prompt": prompt, "instruction_id_list": [instruction_id], "kwargs": [kwargs or {}]}


def test_shipped_ifeval_is_the_documented_file(shared_data):
    assert len(ROWS) == 541 and len(BY_KEY) == 541
    assert sum(len(r["instruction_id_list"]) for r in ROWS) == 834
    assert (
        hashlib.sha256(ifeval.IFEVAL_PATH.read_bytes()).hexdigest()
        == hashlib.sha256((shared_data / "ifeval.jsonl").read_bytes()).hexdigest()
    )


def test_checkers_cover_every_instruction_of_the_data():
    ids = ifeval.instruction_ids()
    assert len(ids) == 25
    assert {i for r in ROWS for i in r["instruction_id_list"]} == set(ids)
    assert "punkt" in ifeval.sentence_tokenizer()


HAND_MADE = [
    # (instruction id, kwargs, a response that follows it, one that does not)
    ("punctuation:no_comma", {}, "No commas in this one.", "Commas, here, there."),
    (
        "change_case:english_lowercase",
        {},
        "this is all lower case english text about the weather.",
        "This Has Capital Letters in an English sentence.",
    ),
    (
        "change_case:english_capital",
        {},
        "THIS IS ALL CAPITAL ENGLISH TEXT ABOUT THE WEATHER TODAY.",
        "this is not in capitals at all, sadly.",
    ),
    (
        "length_constraints:number_words",
        {"relation": "at least", "num_words": 8},
        "one two three four five six seven eight nine",
        "too short here",
    ),
    (
        "length_constraints:number_sentences",
        {"relation": "less than", "num_sentences": 3},
        "Dr. Smith met Mr. Jones at 3 p.m. in the U.S. capital. They talked.",
        "One sentence. Two sentences. Three sentences. Four sentences.",
    ),
    (
        "change_case:capital_word_frequency",
        {"capital_relation": "at least", "capital_frequency": 2},
        "This is VERY IMPORTANT news.",
        "This is quiet news, without shouting.",
    ),
    ("detectable_format:json_format", {}, '```json\n{"name": "value", "n": 3}\n```', "name: value"),
    ("detectable_format:title", {}, "<<A Title>>\nSome text.", "A title without brackets.\nSome text."),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* first\n* second", "* only one bullet"),
    (
        "startend:end_checker",
        {"end_phrase": "Is there anything else I can help with?"},
        "Done. Is there anything else I can help with?",
        "Is there anything else I can help with? Bye.",
    ),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\n\nP.S. See you.", "Hello. See you."),
    ("keywords:forbidden_words", {"forbidden_words": ["banana"]}, "I like apples.", "I like Banana bread."),
    (
        "language:response_language",
        {"language": "en"},
        "The quick brown fox jumps over the lazy dog near the river bank every morning.",
        "Le renard brun rapide saute par-dessus le chien paresseux pres de la riviere chaque matin.",
    ),
    ("startend:quotation", {}, '"Wrapped in double quotes."', "Not wrapped."),
]


@pytest.mark.parametrize("instruction_id,kwargs,good,bad", HAND_MADE, ids=[h[0] for h in HAND_MADE])
def test_hand_made_responses(instruction_id, kwargs, good, bad):
    row = _row(instruction_id, kwargs)
    r = ifeval.check_response(row, good)
    assert r.strict == (True,) and r.prompt_strict and r.prompt_loose
    r = ifeval.check_response(row, bad)
    assert r.strict == (False,) and not r.prompt_strict
    assert ifeval.score_instructions(row, good) and not ifeval.score_instructions(row, bad)


def test_loose_accepts_what_strict_rejects():
    row = _row("detectable_format:json_format")
    response = 'Sure, here is the JSON:\n{"a": 1}'
    r = ifeval.check_response(row, response)
    assert r.strict == (False,) and r.loose == (True,)  # loose drops the first line
    assert not ifeval.score_instructions(row, response)
    assert ifeval.score_instructions(row, response, loose=True)
    row = _row("punctuation:no_comma")
    assert ifeval.check_response(row, "   ").loose == (False,)  # empty responses never pass


def test_real_rows_and_summary():
    lowercase = BY_KEY[1051]  # change_case:english_lowercase
    json_row = BY_KEY[1094]  # detectable_format:json_format
    ending = BY_KEY[1220]  # startend:end_checker
    sentences = BY_KEY[1268]  # length_constraints:number_sentences, less than 6
    title = BY_KEY[1322]  # detectable_format:title
    three = BY_KEY[1000]  # no_comma + number_highlighted_sections (3) + number_words (at least 300)
    assert three["instruction_id_list"] == [
        "punctuation:no_comma",
        "detectable_format:number_highlighted_sections",
        "length_constraints:number_words",
    ]
    essay = "\n\n".join(f"*Part {i}*\n" + " ".join(["the count built castles near the sea"] * 15) for i in range(1, 4))
    cases = [
        (lowercase, "dear sam,\nplease go and vote on tuesday. it matters.\nlove, ana", (True,)),
        (lowercase, "Dear Sam, please go and vote.", (False,)),
        (json_row, json.dumps({"moms": ["a", "b", "c", "d", "e"]}), (True,)),
        (ending, "Two strangers met over coffee.\nIs there anything else I can help with?", (True,)),
        (ending, "Two strangers met over coffee.", (False,)),
        (sentences, "I felt stressed. I took a walk. It helped.", (True,)),
        (sentences, " ".join(["It was a day."] * 7), (False,)),
        (title, "<<Kotlin vs Java>>\nKotlin is concise; Java is everywhere.", (True,)),
        (three, essay, (True, True, True)),
        (three, "*Part 1*\nToo short, and with commas.", (False, False, False)),
    ]
    results = []
    for row, response, expected in cases:
        r = ifeval.check_response(row, response)
        assert r.strict == expected, (row["key"], response[:40])
        results.append(r)
    summary = ifeval.summarize(results)
    assert summary["num_prompts"] == 10 and summary["num_instructions"] == 14
    assert summary["prompt_level_strict_acc"] == pytest.approx(6 / 10)
    assert summary["inst_level_strict_acc"] == pytest.approx(8 / 14)
    assert summary["prompt_level_loose_acc"] >= summary["prompt_level_strict_acc"]


def test_prompt_and_validation():
    row = BY_KEY[1051]
    assert ifeval.build_prompt(row) == row["prompt"]
    chat = ifeval.build_prompt(row, tokenizer=CharTokenizer())
    assert chat.startswith("<|im_start|>user\n" + row["prompt"])
    with pytest.raises(ValueError, match="unknown instruction"):
        ifeval.check_response(_row("made:up"), "x")
    with pytest.raises(ValueError, match="kwargs"):
        ifeval.check_response({"key": 1, "prompt": "p", "instruction_id_list": ["a"], "kwargs": []}, "x")
