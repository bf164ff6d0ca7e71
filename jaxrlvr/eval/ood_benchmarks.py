"""The out-of-domain benchmarks in the evaluation runner: ``humaneval``, ``livecodebench`` (a user's file),
``gpqa`` (alias ``gpqa_diamond``) and ``ifeval``.

Each is a :class:`~jaxrlvr.eval.benchmarks.Benchmark` over the modules :mod:`jaxrlvr.eval.code`,
:mod:`jaxrlvr.eval.choice` and :mod:`jaxrlvr.eval.instructions`, registered when ``jaxrlvr.eval`` is
imported. Their ``configure`` hook takes a run's settings from the ``EvalConfig`` (``humaneval_style``,
``code_timeout_s``, ``code_workers``, ``code_memory_mb``, ``gpqa_path``, ``gpqa_shuffle``, ``seed``,
``data_dir``); the registered objects use the defaults.

Scoring (one 0/1 verdict per sample, so Acc@N and Pass@k are computed as for math):

- ``humaneval``: the code extracted from the response (``code.extract_completion``) passes the problem's
  tests in a subprocess (``code.check_programs_detailed``). Maj@N does not apply (no answer to vote on).
  Record extras: ``exec_status`` (passed / failed / timeout / error) and ``exec_stderr`` for failures.
- ``gpqa``: the extracted letter is the correct option of that sample's shuffled order. Maj@N votes on the
  original option index (``choice.option_index``), so votes agree across shuffles. Record extras:
  ``answer_letter``, ``picked_option``, ``option_order``; the record's gold is the original option index.
- ``ifeval``: all instructions followed (prompt-level strict). Maj@N does not apply. The summary has an
  extra table with the four IFEval accuracies (strict / loose, prompt / instruction level) over all
  samples and the sentence tokenizer in use. Record extras: ``strict`` and ``loose`` per instruction.

Prompts: GPQA and IFEval are user messages of the tokenizer's chat template; HumanEval follows
``humaneval_style``. The runner's ``template`` does not apply to them, except that a ``plain``-kind
template (``plain_boxed``) turns the chat wrapping of GPQA and IFEval off (for base models).
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

from jaxrlvr.data.templates import get_template
from jaxrlvr.data.tokenizer import Tokenizer
from jaxrlvr.eval import choice, code, instructions, livecodebench
from jaxrlvr.eval.benchmarks import Benchmark, register_benchmark
from jaxrlvr.eval.scoring import SampleScore

HUMANEVAL_FILE = "humaneval.jsonl"
IFEVAL_FILE = "ifeval.jsonl"


def _data_file(data_dir: str | None, fname: str, shipped: pathlib.Path) -> pathlib.Path:
    """``data_dir/fname`` when ``data_dir`` is given and holds it, else the copy shipped with jaxrlvr."""
    if data_dir:
        path = pathlib.Path(data_dir).expanduser() / fname
        if path.is_file():
            return path
    return shipped


def _chat(tokenizer: Tokenizer, template: str | None) -> Tokenizer | None:
    """The tokenizer for chat wrapping, or None when the run asks for a plain (no chat markup) template."""
    if template is not None and get_template(template).kind == "plain":
        return None
    return tokenizer


# ------------------------------------------------------------------------------------------------ HumanEval
class CodeScorer:
    """HumanEval: extract the code of every response and run all programs, ``workers`` at a time."""

    def __init__(self, *, style: str = "chat", timeout_s: float = 3.0, workers: int = 2, memory_mb: int = 1024):
        self.style = style
        self.timeout_s = timeout_s
        self.workers = workers
        self.memory_mb = memory_mb

    def score(self, rows, responses):
        problems, completions = [], []
        for row, resp in zip(rows, responses, strict=True):
            for r in resp:
                problems.append(row)
                completions.append(code.extract_completion(row, r, style=self.style))
        results = code.check_programs_detailed(
            problems, completions, timeout_s=self.timeout_s, workers=self.workers, memory_mb=self.memory_mb
        )
        out, pos = [], 0
        for resp in responses:
            scores = []
            for _ in resp:
                res, completion = results[pos], completions[pos]
                pos += 1
                extras: dict[str, Any] = {"exec_status": res.status}
                if not res.passed:
                    extras["exec_stderr"] = res.stderr[-500:]
                scores.append(SampleScore(res.passed, completion if completion.strip() else None, extras))
            out.append(scores)
        return out

    def vote_groups(self, rows, scores):
        return None  # programs are not answers to vote on: Maj@N does not apply


def humaneval_benchmark(
    *,
    name: str = "humaneval",
    style: str = "chat",
    timeout_s: float = 3.0,
    workers: int = 2,
    memory_mb: int = 1024,
) -> Benchmark:
    """HumanEval (164 problems shipped with jaxrlvr, or ``data_dir/humaneval.jsonl``)."""
    if style not in code.STYLES:
        raise ValueError(f"HumanEval style must be one of {code.STYLES}, got {style!r}")

    def load(data_dir: str | None) -> list[dict]:
        rows = code.load_humaneval(_data_file(data_dir, HUMANEVAL_FILE, code.HUMANEVAL_PATH))
        return [dict(r, id=r.get("task_id", f"HumanEval/{i}")) for i, r in enumerate(rows)]

    def build_prompt(row: dict, tokenizer: Tokenizer, template: str | None) -> list[int]:
        return tokenizer.encode(code.build_prompt(row, style=style, tokenizer=tokenizer))

    def configure(cfg) -> Benchmark:
        return humaneval_benchmark(
            name=name,
            style=cfg.humaneval_style,
            timeout_s=cfg.code_timeout_s,
            workers=cfg.code_workers,
            memory_mb=cfg.code_memory_mb,
        )

    return Benchmark(
        name=name,
        load=load,
        build_prompt=build_prompt,
        make_scorer=lambda opts: CodeScorer(style=style, timeout_s=timeout_s, workers=workers, memory_mb=memory_mb),
        format_check=None,
        default_template=None,
        description=f"HumanEval (164 Python functions, executed tests; {style} prompts)",
        configure=configure,
        gold_of=lambda row: None,
    )


# ----------------------------------------------------------------------------------------------------- GPQA
class ChoiceScorer:
    """GPQA: the letter of each response against its own sample's option order (rebuilt from the seed)."""

    def __init__(self, *, seed: int = 0, shuffle: bool = True):
        self.seed = seed
        self.shuffle = shuffle

    def score(self, rows, responses):
        out = []
        for row, resp in zip(rows, responses, strict=True):
            scores = []
            for s, r in enumerate(resp):
                p = choice.format_question(row, sample=s, seed=self.seed, shuffle=self.shuffle)
                letter = choice.extract_choice(r)
                extras = {
                    "answer_letter": p.answer_letter,
                    "picked_option": choice.option_index(r, p),
                    "option_order": list(p.order),
                }
                scores.append(SampleScore(letter == p.answer_letter, letter, extras))
            out.append(scores)
        return out

    def vote_groups(self, rows, scores):
        # votes by the original option, not the letter: the same option has different letters across shuffles
        return [[s.extras["picked_option"] for s in ss] for ss in scores]


def gpqa_benchmark(*, name: str = "gpqa", path: str | None = None, shuffle: bool = True) -> Benchmark:
    """GPQA Diamond from a user path (``path``; None: ``$JAXRLVR_GPQA_PATH``, then ``~/.cache/jaxrlvr/gpqa/``).
    Every sample gets its own option order (``shuffle``), seeded by the run's seed: the runner passes it to
    ``build_sample_prompts`` and, through ``ScoringOptions.seed``, to the scorer."""

    def load(data_dir: str | None) -> list[dict]:
        try:
            return choice.load_gpqa(path)
        except choice.GPQADataNotFoundError as e:
            raise choice.GPQADataNotFoundError(f"{e} (In the evaluation config: gpqa_path=FILE.)") from None

    def sample_prompt(row: dict, sample: int, seed: int, tokenizer: Tokenizer, template: str | None) -> list[int]:
        chat = _chat(tokenizer, template)
        p = choice.build_prompt(row, sample=sample, seed=seed, shuffle=shuffle, tokenizer=chat)
        return tokenizer.encode(p.text)

    def build_prompt(row: dict, tokenizer: Tokenizer, template: str | None) -> list[int]:
        return sample_prompt(row, 0, 0, tokenizer, template)

    def build_sample_prompts(
        row: dict, n: int, seed: int, tokenizer: Tokenizer, template: str | None
    ) -> list[list[int]]:
        return [sample_prompt(row, s, seed, tokenizer, template) for s in range(n)]

    def configure(cfg) -> Benchmark:
        return gpqa_benchmark(name=name, path=cfg.gpqa_path, shuffle=cfg.gpqa_shuffle)

    return Benchmark(
        name=name,
        load=load,
        build_prompt=build_prompt,
        make_scorer=lambda opts: ChoiceScorer(seed=opts.seed, shuffle=shuffle),
        format_check=None,
        default_template=None,
        description="GPQA Diamond (198 four-option questions; data from a user path; options shuffled per sample)",
        build_sample_prompts=build_sample_prompts,
        configure=configure,
        gold_of=lambda row: row["answer_index"],
    )


# --------------------------------------------------------------------------------------------------- IFEval
class InstructionScorer:
    """IFEval: lm-eval's checkers on every response; a sample is correct when it follows every instruction
    (strict). ``extra_tables`` gives the four IFEval accuracies over all samples and the sentence tokenizer."""

    def score(self, rows, responses):
        out = []
        for row, resp in zip(rows, responses, strict=True):
            scores = []
            for r in resp:
                res = instructions.check_response(row, r)
                answer = f"{sum(res.strict)}/{len(res.strict)} followed (strict)" if r.strip() else None
                extras = {"strict": list(res.strict), "loose": list(res.loose)}
                scores.append(SampleScore(res.prompt_strict, answer, extras))
            out.append(scores)
        return out

    def vote_groups(self, rows, scores):
        return None  # free-form responses: Maj@N does not apply

    def extra_tables(self, rows: Sequence[dict], scores) -> dict[str, dict[str, Any]]:
        results = [
            instructions.IFEvalResult(
                tuple(row["instruction_id_list"]), tuple(s.extras["strict"]), tuple(s.extras["loose"])
            )
            for row, ss in zip(rows, scores, strict=True)
            for s in ss
        ]
        summary = instructions.summarize(results)
        table: dict[str, Any] = {
            k: float(summary[k])
            for k in (
                "prompt_level_strict_acc",
                "inst_level_strict_acc",
                "prompt_level_loose_acc",
                "inst_level_loose_acc",
            )
        }
        table["responses"] = summary["num_prompts"]
        table["instructions"] = summary["num_instructions"]
        table["sentence_tokenizer"] = instructions.sentence_tokenizer()
        return {"IFEval (strict / loose, over all samples)": table}


def ifeval_benchmark(*, name: str = "ifeval") -> Benchmark:
    """IFEval (541 prompts shipped with jaxrlvr, or ``data_dir/ifeval.jsonl``); scoring needs lm-eval."""

    def load(data_dir: str | None) -> list[dict]:
        instructions.instruction_ids()  # lm-eval's checkers must import: fail before sampling, not after
        rows = instructions.load_ifeval(_data_file(data_dir, IFEVAL_FILE, instructions.IFEVAL_PATH))
        return [dict(r, id=r["key"]) for r in rows]

    def build_prompt(row: dict, tokenizer: Tokenizer, template: str | None) -> list[int]:
        return tokenizer.encode(instructions.build_prompt(row, tokenizer=_chat(tokenizer, template)))

    return Benchmark(
        name=name,
        load=load,
        build_prompt=build_prompt,
        make_scorer=lambda opts: InstructionScorer(),
        format_check=None,
        default_template=None,
        description="IFEval (541 prompts with verifiable instructions; lm-eval's checkers)",
        gold_of=lambda row: list(row["instruction_id_list"]),
    )


# -------------------------------------------------------------------------------------------- LiveCodeBench
class LiveCodeScorer:
    """LiveCodeBench: the program of every response against all the problem's tests, in the sandbox."""

    def __init__(self, *, timeout_s: float = 3.0, workers: int = 2, memory_mb: int = 1024):
        self.timeout_s, self.workers, self.memory_mb = timeout_s, workers, memory_mb

    def score(self, rows, responses):
        flat_rows = [row for row, resp in zip(rows, responses, strict=True) for _ in resp]
        programs = [livecodebench.extract_program(r) for resp in responses for r in resp]
        results = livecodebench.check_responses(
            flat_rows, programs, timeout_s=self.timeout_s, workers=self.workers, memory_mb=self.memory_mb
        )
        out, pos = [], 0
        for resp in responses:
            scores = []
            for _ in resp:
                res, program = results[pos], programs[pos]
                pos += 1
                extras: dict[str, Any] = {"exec_status": res.status}
                if not res.passed:
                    extras["exec_stderr"] = (res.detail or res.stderr or "")[-500:]
                scores.append(SampleScore(res.passed, program if program.strip() else None, extras))
            out.append(scores)
        return out

    def vote_groups(self, rows, scores):
        return None  # programs are not answers to vote on: Maj@N does not apply


def livecodebench_benchmark(
    *, name: str = "livecodebench", path: str | None = None, timeout_s: float = 3.0, workers: int = 2, memory_mb=1024
) -> Benchmark:
    """LiveCodeBench code generation from a user file (``path``; None: ``$JAXRLVR_LIVECODEBENCH_PATH``):
    :mod:`jaxrlvr.eval.livecodebench`. Prompts are user messages of the chat template (none with a plain
    template)."""

    def load(data_dir: str | None) -> list[dict]:
        return livecodebench.load_livecodebench(path)

    def build_prompt(row: dict, tokenizer: Tokenizer, template: str | None) -> list[int]:
        text = livecodebench.prompt_text(row)
        chat = _chat(tokenizer, template)
        if chat is not None and hasattr(chat, "apply_chat_template"):
            text = chat.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
        return tokenizer.encode(text)

    def configure(cfg) -> Benchmark:
        return livecodebench_benchmark(
            name=name,
            path=cfg.livecodebench_path,
            timeout_s=cfg.code_timeout_s,
            workers=cfg.code_workers,
            memory_mb=cfg.code_memory_mb,
        )

    return Benchmark(
        name=name,
        load=load,
        build_prompt=build_prompt,
        make_scorer=lambda opts: LiveCodeScorer(timeout_s=timeout_s, workers=workers, memory_mb=memory_mb),
        format_check=None,
        default_template=None,
        description="LiveCodeBench code generation (a user's release file; all tests run in the sandbox)",
        configure=configure,
        gold_of=lambda row: None,
    )


register_benchmark(humaneval_benchmark())
register_benchmark(livecodebench_benchmark())
register_benchmark(gpqa_benchmark())
register_benchmark(dataclasses.replace(gpqa_benchmark(name="gpqa_diamond"), description="GPQA Diamond (alias of gpqa)"))
register_benchmark(ifeval_benchmark())
