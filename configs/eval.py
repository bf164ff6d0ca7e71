"""Evaluation config for scripts/evaluate.py:

    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=math500,aime24
    python scripts/evaluate.py --config configs/eval.py --config.ckpt=DIR --config.benchmarks=humaneval,gpqa,ifeval \
        --config.max_new_tokens_by_benchmark=humaneval=1024,ifeval=1280

Presets (``--config configs/eval.py:n64`` or ``:n64,smoke``):
  (none)  N=8 samples, temperature 0.6, top-p 0.95 (the papers' default evaluation)
  n64     N=64 samples, temperature 1.0, top-p 1.0 (Pass@k curves)
  greedy  one greedy sample per problem
  smoke   2 problems of aime24, N=2, 64 new tokens: a quick end-to-end check
"""

import ml_collections

PRESETS = ("n64", "greedy", "smoke")


def get_config(arg=None):
    c = ml_collections.ConfigDict()
    c.ckpt = ""  # Hugging Face folder (config.json + *.safetensors) or orbax checkpoint of a jaxrlvr run
    c.tokenizer = ""  # "" = the checkpoint folder; a folder with tokenizer.json; or "char"
    c.dtype = ""  # "" = as stored; e.g. "bfloat16" (HF checkpoints)
    # comma-separated names (math500, aime24, aime25, amc23, minerva, gsm8k; humaneval, gpqa, ifeval) or paths
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

    for preset in [p.strip() for p in (arg or "").split(",") if p.strip()]:
        if preset == "n64":
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
