r"""Build the training-data-diversity subsets of "Revisiting Entropy" Table 3 (arXiv 2511.05993, 6.3 / App. D.3).

usage: python scripts/data_subsets.py --config configs/entropy_study.py[:model=NAME] \
           --config.model.hf_path=MODEL --config.data.path=FULL.jsonl --out DIR \
           [--k 16] [--sizes 10001,5031,2538,1246,616] [--seed 0] [--batch 16]

Embeds every training prompt the trainer would keep (the config's template, tokenizer and
rollout.max_prompt_len) as the mean final-norm hidden state of the config's model over its prompt tokens
(D.3: "a mean-pooled token embedding from the final layer of Qwen2.5-Math-7B", i.e. the policy itself),
runs K-means with --k clusters, and writes for each size:
  DIR/kmeans_<size>.jsonl   whole clusters, largest first (D.3: "selecting samples from the top clusters")
  DIR/random_<size>.jsonl   a uniform sample of the same size
and DIR/subsets.json (source, sizes, k, seed, cluster sizes, each subset's clusters and mean pairwise
embedding distance). Records are copied from the source file unchanged. Train on one with
  --config configs/entropy_study.py:data_subset=kmeans_616,subsets_dir=DIR
--k: D.3's number of clusters is lost from our copy of the text; 16 is ours (docs/analysis.md).
Exit status 2: a user error (one line naming the fix).
"""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # configs/ import their shared presets


def main(argv=None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if any(a in ("-h", "--help", "-help", "--helpshort") for a in argv[1:]):
        print(__doc__.strip())
        return 0
    from absl import app, flags
    from ml_collections import config_flags

    from jaxrlvr import cli_support
    from jaxrlvr.analysis.data_diversity import DEFAULT_K, TABLE3_SIZES, build_subset_files

    config = config_flags.DEFINE_config_file(
        "config", None, "config file (configs/NAME.py[:presets])", lock_config=True
    )
    out = flags.DEFINE_string("out", None, "output folder of the subset files")
    k = flags.DEFINE_integer("k", DEFAULT_K, "K-means clusters (ours: D.3's K is lost from the text)")
    sizes = flags.DEFINE_string("sizes", ",".join(map(str, TABLE3_SIZES)), "comma-separated subset sizes")
    seed = flags.DEFINE_integer("seed", 0, "seed of K-means and the random subsets")
    batch = flags.DEFINE_integer("batch", 16, "prompts per embedding forward pass")
    flags.mark_flags_as_required(["config", "out"])

    def run(args):
        if len(args) > 1:
            cli_support.fail(
                f"unexpected arguments {args[1:]}: options are --config, --config.key=value, --out, "
                "--k, --sizes, --seed, --batch"
            )
        try:
            size_list = [int(s) for s in sizes.value.split(",") if s.strip()]
        except ValueError:
            cli_support.fail(f"--sizes={sizes.value!r}: give comma-separated integers (e.g. 10001,5031,2538,1246,616)")
        cli_support.quiet_logs()
        with cli_support.user_errors():
            summary = build_subset_files(
                config.value,
                out.value,
                size_list,
                k=k.value,
                seed=seed.value,
                batch=batch.value,
                log=lambda m: print(m, file=sys.stderr),
            )
        print(json.dumps({n: s["mean_pairwise_distance"] for n, s in summary["subsets"].items()}, indent=2))
        print(f"subsets: {pathlib.Path(out.value) / 'subsets.json'}")
        return 0

    app.run(run, argv=argv, flags_parser=cli_support.flags_parser)
    return 0


if __name__ == "__main__":
    sys.exit(main())
