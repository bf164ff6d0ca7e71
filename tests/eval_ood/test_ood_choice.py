"""GPQA multiple choice: loading (from a user path only), seeded shuffles, letter extraction, scoring.

The GPQA questions must not appear in the project: unit tests use made-up rows, and the real file is read
from ../shared/data at test time (skipped without it). Nothing from it is printed in assertion messages.
"""

import collections
import csv
import json
import math

import pytest

from jaxrlvr.data.tokenizer import CharTokenizer
from jaxrlvr.eval import choice

CANARY = "example-canary-string"
ROWS = [
    {
        "id": f"q{i}",
        "question": f"Which made-up option is right in question {i}?",
        "choices": [f"wrong {i}a", f"right {i}", f"wrong {i}b", f"wrong {i}c"],
        "answer_index": 1,
        "answer": f"right {i}",
        "canary": CANARY,
    }
    for i in range(50)
]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_missing_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(choice.ENV_VAR, raising=False)
    with pytest.raises(choice.GPQADataNotFoundError) as e:
        choice.load_gpqa()
    msg = str(e.value)
    assert "gated" in msg and "gpqa_diamond.csv" in msg and choice.ENV_VAR in msg
    assert str(tmp_path / ".cache/jaxrlvr/gpqa/gpqa_diamond.jsonl") in msg
    with pytest.raises(FileNotFoundError, match="gated"):
        choice.load_gpqa(tmp_path / "nope.jsonl")


def test_load_jsonl_csv_and_env_var(tmp_path, monkeypatch):
    path = _write_jsonl(tmp_path / "g.jsonl", ROWS)
    rows = choice.load_gpqa(path)
    assert rows == ROWS and rows[0]["canary"] == CANARY  # the canary is kept
    monkeypatch.setenv(choice.ENV_VAR, str(path))
    assert choice.load_gpqa() == ROWS
    # the original release's CSV columns
    csv_path = tmp_path / "gpqa_diamond.csv"
    with csv_path.open("w", newline="") as f:
        w = csv.DictWriter(
            f,
            [
                "Record ID",
                "Question",
                "Correct Answer",
                "Incorrect Answer 1",
                "Incorrect Answer 2",
                "Incorrect Answer 3",
                "Canary String",
                "Subdomain",
            ],
        )
        w.writeheader()
        w.writerow(
            {
                "Record ID": "rec1",
                "Question": " Q? ",
                "Correct Answer": "yes",
                "Incorrect Answer 1": "a",
                "Incorrect Answer 2": "b",
                "Incorrect Answer 3": "c",
                "Canary String": CANARY,
                "Subdomain": "Made up",
            }
        )
    (row,) = choice.load_gpqa(csv_path)
    assert row["id"] == "rec1" and row["question"] == "Q?" and row["choices"] == ["yes", "a", "b", "c"]
    assert row["answer_index"] == 0 and row["canary"] == CANARY


def test_bad_rows_are_rejected_with_the_field_named(tmp_path):
    bad = dict(ROWS[0], choices=["only", "three", "options"])
    with pytest.raises(ValueError, match="choices"):
        choice.load_gpqa(_write_jsonl(tmp_path / "a.jsonl", [bad]))
    bad = dict(ROWS[0], answer_index=4)
    with pytest.raises(ValueError, match="answer_index"):
        choice.load_gpqa(_write_jsonl(tmp_path / "b.jsonl", [bad]))


def test_seeded_permutation_per_question_and_sample():
    order = choice.choice_order("q1", 0, seed=0)
    assert sorted(order) == [0, 1, 2, 3]
    assert choice.choice_order("q1", 0, seed=0) == order  # deterministic (no dependence on hash())
    orders = {choice.choice_order("q1", s, seed=0) for s in range(64)}
    assert len(orders) > 12  # samples of one question see different orders
    assert choice.choice_order("q1", 0, seed=1) != order or choice.choice_order("q1", 1, seed=1) != choice.choice_order(
        "q1", 1, seed=0
    )
    # the correct letter is spread evenly over A-D
    letters = collections.Counter(p.answer_letter for ps in choice.build_prompts(ROWS, 8) for p in ps)
    assert set(letters) == set("ABCD") and min(letters.values()) > 60


def test_prompt_places_the_options_in_the_sample_order():
    for s in range(5):
        p = choice.format_question(ROWS[3], sample=s, seed=7)
        for k, i in enumerate(p.order):
            assert f"({'ABCD'[k]}) {ROWS[3]['choices'][i]}\n" in p.text + "\n"
        assert f"({p.answer_letter}) right 3" in p.text
        assert CANARY not in p.text and "\\boxed{}" in p.text
    unshuffled = choice.format_question(ROWS[3], shuffle=False)
    assert unshuffled.order == (0, 1, 2, 3) and unshuffled.answer_letter == "B"
    chat = choice.build_prompt(ROWS[3], tokenizer=CharTokenizer())
    assert chat.text.startswith("<|im_start|>user\n") and chat.text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize(
    "response,letter",
    [
        ("... so the result is \\boxed{C}", "C"),
        ("\\boxed{(B)}", "B"),
        ("$\\boxed{\\text{D}}$", "D"),
        ("\\boxed{\\textbf{(A)}}", "A"),
        ("The answer is (C).", "C"),
        ("The correct answer is B", "B"),
        ("Answer: D", "D"),
        ("**Final Answer:** **A**", "A"),
        ("ANSWER: b", None),  # lower-case letters are not options
        ("the answer is option C", "C"),
        ("Thus the correct option is D.", "D"),
        ("Answer: $\\boxed{B}$", "B"),
        ("First I thought Answer: A. On reflection the answer is (C).", "C"),  # last occurrence wins
        ("\\boxed{B}\n\nAnswer: D", "D"),
        ("Reasoning...\n\n(C)\n", "C"),
        ("The answer is Dimethyl ether", None),  # not a letter
        ("the answer is D-glucose", None),
        ("I am not sure.", None),
        ("", None),
    ],
)
def test_extract_choice(response, letter):
    assert choice.extract_choice(response) == letter


def test_scoring_and_acc_pass_at_k():
    rows = ROWS[:4]
    n = 4
    prompts = choice.build_prompts(rows, n, seed=3)
    # question 0: always right; 1: right in samples 0 and 2; 2: right only once; 3: never (no answer given)
    right = {0: range(4), 1: (0, 2), 2: (3,), 3: ()}
    responses, letters = [], []
    for q, ps in enumerate(prompts):
        for s, p in enumerate(ps):
            wrong = "ABCD"[("ABCD".index(p.answer_letter) + 1) % 4]
            responses.append(
                f"Reasoning.\nAnswer: {p.answer_letter if s in right[q] else wrong}" if q != 3 else "no idea"
            )
            letters.append(p.answer_letter)
    scores = choice.score_choice_batch(responses, letters)
    counts = [sum(scores[q * n : (q + 1) * n]) for q in range(4)]
    assert counts == [4, 2, 1, 0]
    acc = sum(scores) / len(scores)
    assert acc == pytest.approx(7 / 16)
    pass2 = [1 - math.comb(n - c, 2) / math.comb(n, 2) for c in counts]
    assert sum(pass2) / 4 == pytest.approx((1 + (1 - 1 / 6) + 0.5 + 0) / 4)
    with pytest.raises(ValueError, match="answer_letter"):
        choice.score_choice("Answer: A", "E")


def test_option_index_maps_letters_back_for_majority_voting():
    # the same option picked under different orders has different letters but one option index
    picks = []
    for s in range(6):
        p = choice.build_prompt(ROWS[5], sample=s)
        letter = "ABCD"[p.order.index(2)]  # the letter under which choices[2] is shown in this sample
        picks.append(choice.option_index(f"\\boxed{{{letter}}}", p))
    assert picks == [2] * 6
    assert choice.option_index("no answer", choice.build_prompt(ROWS[5])) is None


def test_real_gpqa_file(shared_data):
    path = shared_data / "gpqa_diamond.jsonl"
    if not path.is_file():
        pytest.skip("gpqa_diamond.jsonl is not in the shared data folder")
    rows = choice.load_gpqa(path)
    assert len(rows) == 198
    assert len({r["id"] for r in rows}) == 198
    assert all(r["canary"].startswith("gpqa:") for r in rows)  # kept in the loaded data...
    for r in rows:
        assert r["choices"][r["answer_index"]] == r["answer"]
        # the file's own letter is the unshuffled order's letter
        assert choice.format_question(r, shuffle=False).answer_letter == r["answer_letter"]
        for s in range(2):
            p = choice.build_prompt(r, sample=s, seed=0)
            assert r["canary"] not in p.text  # ...and never put in a prompt
            assert r["question"] in p.text
            correct = f"({p.answer_letter}) {r['answer']}"
            assert correct in p.text, r["id"]
            assert choice.score_choice(f"Thinking.\n\\boxed{{{p.answer_letter}}}", p.answer_letter)
