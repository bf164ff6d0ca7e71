"""Evaluation config for scripts/evaluate.py (``jaxrlvr-eval``):

    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=math500,aime24
    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=humaneval,gpqa,ifeval \
        --config.max_new_tokens_by_benchmark=humaneval=1024,ifeval=1280
    python scripts/evaluate.py --config configs/eval.py:revisiting --config.ckpt=RUN_WORKDIR --config.out_dir=OUT

Presets (``--config configs/eval.py:revisiting`` or ``:deng,smoke``), named after the paper whose protocol
they follow:
  (none)      N=8, temperature 0.6, top-p 0.95: Deng et al.'s evaluation (arXiv 2508.02260, "Implementation
              Details": "During evaluation, we generate 8 [...] trajectories per prompt using nucleus
              sampling through top_p=0.95 [...] and temperature 0.6")
  deng        the same, with Deng's benchmarks (AIME 2024/2025, AMC 2023, MATH500, Minerva; "Dataset and
              Benchmarks"; GPQA and HumanEval are its out-of-domain ones: add them by name)
  revisiting  Revisiting (arXiv 2511.05993) App. B: N=64, temperature 1.0, top-p 1.0 ("we sampled 64 responses
              and reported both Avg@64 and Pass@64. All evaluations used a decoding temperature of 1.0 and
              top-[p] of 1.0"); AIME 2025 is the validation set ("AIME 2025 served as the validation set, and the
              best checkpoint was evaluated on all other benchmarks"): ``select=best`` picks the run's kept
              checkpoint with the best AIME 2025 Avg@64 and evaluates it on AIME 2024, MATH500, AMC 2023,
              Minerva and IF-Eval (LiveCodeBench: add ``livecodebench`` with its file, docs/ood_eval.md).
              ``ckpt`` must be a training run's workdir (``--config.select=none`` evaluates one checkpoint).
  n64         N=64, temperature 1.0, top-p 1.0 without selection (Pass@k curves of any checkpoint)
  greedy      one greedy sample per problem
  smoke       2 problems, N=2, 64 new tokens: a quick end-to-end check

Selection keys: ``select`` ("none" | "best"), ``validation`` (the validation benchmark), ``select_metric``
(a summary key, ``acc_at_n`` = Avg@N), ``select_scores`` ("evaluate": sample every kept checkpoint on the
validation benchmark now, with this config's sampling; "recorded": the scores the trainer's periodic
validation logged, see configs/entropy_study.py). Writes ``OUT/selection.json``; ``OUT/summary.json`` names
the checkpoint under ``"selection"`` (path, step, validation score).
"""

import ml_collections

PRESETS = ("deng", "revisiting", "n64", "greedy", "smoke")
DENG_BENCHMARKS = "aime24,aime25,amc23,math500,minerva"
# Revisiting App. B's test benchmarks other than the validation set (AIME 2025); LiveCodeBench needs a file
REVISITING_BENCHMARKS = "aime24,math500,amc23,minerva,ifeval"


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.ckpt = ""  # Hugging Face folder (config.json + *.safetensors) or orbax checkpoint of a jaxrlvr run
    c.tokenizer = ""  # "" = the checkpoint folder; a folder with tokenizer.json; or "char"
    c.dtype = ""  # "" = as stored; e.g. "bfloat16" (HF checkpoints)
    # comma-separated names (math500, aime24, aime25, amc23, minerva, gsm8k; humaneval, livecodebench, gpqa,
    # ifeval) or paths
    c.benchmarks = "math500"
    c.data_dir = ""  # "" = the copies shipped with jaxrlvr; else a folder with the benchmark files
    c.out_dir = ""  # "" = <run>/eval/step_NNNNNN_<benchmarks>_n<N>/ for a run checkpoint (else required)
    c.num_samples = 8
    c.temperature = 0.6
    c.top_p = 0.95
    c.top_k = 0
    c.greedy = False
    c.max_new_tokens = 4096
    c.template = ""  # "" = each benchmark's default (qwen_math_cot); plain_boxed; dapo_answer
    c.prompt_batch_size = 16  # problems per sampler call
    c.seed = 0
    c.max_problems = 0  # 0 = all
    c.verifier_workers = 4
    c.verifier_timeout_s = 5.0
    c.strict_format = False
    c.max_new_tokens_by_benchmark = ""  # per-benchmark overrides, e.g. "humaneval=1024,ifeval=1280"
    c.skip_long_prompts = False  # drop (and count) problems whose prompt + max_new_tokens exceed the context
    # out-of-domain benchmarks (docs/ood_eval.md)
    c.humaneval_style = "chat"  # "chat" (chat template, reply with the function) or "completion" (base models)
    c.code_timeout_s = 3.0  # wall-clock limit per HumanEval program
    c.code_workers = 2  # programs run in parallel
    c.code_memory_mb = 1024  # address-space limit per program (0 = none)
    c.gpqa_path = ""  # "" = $JAXRLVR_GPQA_PATH, then ~/.cache/jaxrlvr/gpqa/gpqa_diamond.{jsonl,csv}
    c.gpqa_shuffle = True  # each sample sees the four options in its own seeded order
    c.livecodebench_path = ""  # "" = $JAXRLVR_LIVECODEBENCH_PATH: a release's test*.jsonl (docs/ood_eval.md)
    # checkpoint selection (module docstring): "none" evaluates ckpt; "best" picks a run's checkpoint first
    c.select = "none"
    c.validation = "aime25"
    c.select_metric = "acc_at_n"
    c.select_scores = "evaluate"

    presets = [p.strip() for p in (arg or "").split(",") if p.strip()]
    sampling = [p for p in presets if p in ("deng", "revisiting", "n64", "greedy")]
    if len(sampling) > 1:
        raise ValueError(f"eval presets {sampling[0]!r} and {sampling[1]!r} both set the sampling; keep one")
    for preset in sorted(presets, key=lambda p: p == "smoke"):  # smoke shrinks whatever the others set
        if preset == "deng":
            c.num_samples, c.temperature, c.top_p = 8, 0.6, 0.95
            c.benchmarks = DENG_BENCHMARKS
        elif preset == "revisiting":
            c.num_samples, c.temperature, c.top_p = 64, 1.0, 1.0
            c.prompt_batch_size = 4
            c.benchmarks = REVISITING_BENCHMARKS
            c.select, c.validation = "best", "aime25"
        elif preset == "n64":
            c.num_samples, c.temperature, c.top_p = 64, 1.0, 1.0
            c.prompt_batch_size = 4
        elif preset == "greedy":
            c.num_samples, c.greedy, c.temperature, c.top_p = 1, True, 1.0, 1.0  # T only scales log-probs
        elif preset == "smoke":
            c.benchmarks = "aime24"
            c.max_problems, c.num_samples, c.max_new_tokens = 2, 2, 64
            c.prompt_batch_size, c.verifier_workers = 2, 1
        else:
            raise ValueError(f"unknown eval preset {preset!r}; known: {PRESETS}")
    c.lock()
    return c
