"""The paper claims the study tests (issue 27), registered before the runs: docs/study/manifest.json records
this file's path, its SHA-256 and the commit it was taken at.

Each claim: ``paper`` (the study it belongs to: one Holm family per paper), ``quote`` (verbatim from the
paper text in ../shared/papers/, checked by tests/study/test_study_config.py; the text dropped inline maths,
so a quote may read "tokens with advantages"), ``section``, ``a`` and ``b`` (variants of that study),
``metric`` (a docs/study/runs.csv column; the test is on ``a - b`` per seed, or on ``metric`` of ``a`` minus
``metric_b`` of ``b`` when ``metric_b`` is given), ``expect`` (``greater``: a > b; ``less``; ``equivalent``:
within the margin), the equivalence margin (``margin`` absolute, or ``margin_relative`` times the mean of
``b`` over seeds; every claim has one: a direction claim whose difference is inside it is refuted as
``equivalent``), and ``note`` (our reading, where the paper's words leave a choice).

Margins (ours): +-10% relative for entropy and length (the papers' entropy differences between methods are
2x-30x, Revisiting Table 2; a 10% change is well inside what they call "comparable"); +-0.03 absolute for
accuracy (3 points: the papers' gains are 1.5-2.3 points, Decomposing "Overall Performance").
"""

DEC = "decomposing"
REV = "revisiting"
ENT, ACC, LEN = dict(margin_relative=0.1), dict(margin=0.03), dict(margin_relative=0.1)

_OVERALL = ("Compared to the GRPO baseline, they outperform it by an average of 1.51% for the Qwen2.5-7B model and "
            "by 2.31% for the Qwen2.5-Math-7B model")  # fmt: skip
_LATE_ENT = "our approaches sustain a higher level of entropy during the later stages of the plateau stage."
_LONGER = "both methods result in longer responses compared to the baseline"
_POS_LATE = ("reinforcing tokens later in the sequence yields superior performance compared to both baselines with no "
             "positional bonus and the strategy that gives bonuses to early tokens.")  # fmt: skip
_POS_ENT = "While applying the positional bonus in either direction increases policy entropy"
_FIG5 = ("As shown, Clip-Cov, KL-Cov, Adaptive Entropy Regularization, and Rand-Pos-Clip effectively alleviate "
         "entropy collapse, whereas Ent-Adv intensifies it.")  # fmt: skip
_COMPETITIVE = "Pos-Adv-Reweight effectively mitigates entropy collapse while maintaining competitive performance."
_BEYOND = ("both Pos-Adv-Reweight (Stage-based) and Pos-Adv-Reweight (Epoch-wise) further improve LLM performance "
           "beyond the setting")  # fmt: skip

CLAIMS = [
    # ---------------------------------------------------------------- Decomposing (arXiv 2508.02260)
    dict(paper=DEC, a="ppl", b="baseline", metric="accuracy_after", expect="greater", **ACC, quote=_OVERALL,
         section="Results and Analysis, Overall Performance"),
    dict(paper=DEC, a="position_late", b="baseline", metric="accuracy_after", expect="greater", **ACC,
         quote=_OVERALL, section="Results and Analysis, Overall Performance"),
    dict(paper=DEC, a="ppl", b="ppl_inverse", metric="accuracy_after", expect="greater", **ACC,
         quote="the former one results in superior performance gains.",
         section="Instance-level Analysis: The Role of Perplexity (Fig. 5c)",
         note="'the former' is the (1 - alpha w_ppl) factor (favouring low PPL), 'ppl'; the latter is 'ppl_inverse'"),
    dict(paper=DEC, a="ppl_inverse", b="ppl", metric="entropy_final", expect="greater", **ENT,
         quote="In contrast, focusing on high-PPL samples leads to much higher policy entropy",
         section="Instance-level Analysis: The Role of Perplexity (Fig. 5d)"),
    dict(paper=DEC, a="position_late_g1", b="position_early_g1", metric="accuracy_after", expect="greater", **ACC,
         quote=_POS_LATE, section="Token-level Analysis: Positional Significance (Fig. 7a, gamma = 1.0)"),
    dict(paper=DEC, a="position_late_g1", b="baseline", metric="accuracy_after", expect="greater", **ACC,
         quote=_POS_LATE, section="Token-level Analysis: Positional Significance (Fig. 7a, gamma = 1.0)"),
    dict(paper=DEC, a="position_late_g1", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote=_POS_ENT, section="Token-level Analysis: Positional Significance (Fig. 7b, gamma = 1.0)"),
    dict(paper=DEC, a="position_early_g1", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote=_POS_ENT, section="Token-level Analysis: Positional Significance (Fig. 7b, gamma = 1.0)"),
    dict(paper=DEC, a="ppl", b="baseline", metric="entropy_late", expect="greater", **ENT, quote=_LATE_ENT,
         section="Results and Analysis, Entropy Dynamics (Fig. 9a)",
         note="entropy_late: mean token entropy over the last quarter of the run (the late plateau)"),
    dict(paper=DEC, a="position_late", b="baseline", metric="entropy_late", expect="greater", **ENT,
         quote=_LATE_ENT, section="Results and Analysis, Entropy Dynamics (Fig. 9b)"),
    dict(paper=DEC, a="ppl", b="baseline", metric="length_final", expect="greater", **LEN, quote=_LONGER,
         section="Results and Analysis, Response Pattern Analysis (Table 2)"),
    dict(paper=DEC, a="position_late", b="baseline", metric="length_final", expect="greater", **LEN,
         quote=_LONGER, section="Results and Analysis, Response Pattern Analysis (Table 2)"),
    dict(paper=DEC, a="baseline", b="baseline", metric="entropy_neg_drop", metric_b="entropy_pos_drop",
         expect="greater", margin_relative=0.1, quote="Entropy reduction mainly stems from negative samples.",
         section="Stage-level Dynamics, Rising Stage (Fig. 2a)",
         note="within the baseline run: the entropy drop of incorrect responses vs that of correct ones over the "
              "rising stage (step 1 to the plateau the stage detector finds)"),
    # ---------------------------------------------------------------- Revisiting (arXiv 2511.05993)
    dict(paper=REV, a="clip_higher", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote="Clip-Higher effectively prevents entropy collapse and even increases entropy during training.",
         section="6.1 Clipping Threshold (Fig. 3)"),
    dict(paper=REV, a="clip_lower", b="baseline", metric="entropy_final", expect="less", **ENT,
         quote="Among them, Clip-Lower results in the most pronounced collapse",
         section="6.1 Clipping Threshold (Fig. 3)"),
    dict(paper=REV, a="clip_tighter", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote="Clip-Tighter mitigates entropy collapse and maintains higher entropy than the default clipping "
               "configuration.", section="6.1 Clipping Threshold (Fig. 3)"),
    dict(paper=REV, a="clip_free", b="clip_tighter", metric="entropy_final", expect="greater", **ENT,
         quote="Clip-Free achieves the highest entropy among all clipping variants, except for Clip-Higher.",
         section="6.1 Clipping Threshold (Fig. 3)"),
    dict(paper=REV, a="offpolicy_1", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote="Under the default setting, where entropy decreases with few updates, additional updates accelerate "
               "this decline", section="6.2 Off-Policy Updates (Fig. 4)",
         note="baseline is N = 4 updates per rollout batch, offpolicy_1 is N = 1"),
    dict(paper=REV, a="non_negative", b="baseline", metric="entropy_final", expect="less", **ENT,
         quote="training LLMs exclusively on tokens with advantages leads to the most severe entropy collapse",
         section="7.2 Empirical Analysis (Fig. 5)", note="the dropped symbol is A >= 0 (non-negative)"),
    dict(paper=REV, a="non_positive", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote="while training on tokens with advantages yields high entropy",
         section="7.2 Empirical Analysis (Fig. 5)", note="the dropped symbol is A <= 0 (non-positive, lambda = 0)"),
    dict(paper=REV, a="entropy_adaptive", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote=_FIG5, section="7.2 Empirical Analysis (Fig. 5)"),
    dict(paper=REV, a="clip_cov", b="baseline", metric="entropy_final", expect="greater", **ENT, quote=_FIG5,
         section="7.2 Empirical Analysis (Fig. 5)"),
    dict(paper=REV, a="kl_cov", b="baseline", metric="entropy_final", expect="greater", **ENT, quote=_FIG5,
         section="7.2 Empirical Analysis (Fig. 5)"),
    dict(paper=REV, a="rand_pos_clip", b="baseline", metric="entropy_final", expect="greater", **ENT, quote=_FIG5,
         section="7.2 Empirical Analysis (Fig. 5)"),
    dict(paper=REV, a="entropy_adv", b="baseline", metric="entropy_final", expect="less", **ENT, quote=_FIG5,
         section="7.2 Empirical Analysis (Fig. 5; Table 2: 0.01669 vs GRPO 0.01789)"),
    dict(paper=REV, a="pos_adv_entropy", b="baseline", metric="entropy_final", expect="greater", **ENT,
         quote=_COMPETITIVE, section="7.3 Positive-Advantage Reweighting"),
    dict(paper=REV, a="non_positive", b="baseline", metric="accuracy_after", expect="less", **ACC,
         quote="it results in lower average Avg@64 scores on both in-domain and out-of-domain benchmarks",
         section="7.3 Positive-Advantage Reweighting (Table 2)", note="the subject is training on A <= 0 only"),
    dict(paper=REV, a="pos_adv_stage", b="non_positive", metric="accuracy_after", expect="greater", **ACC,
         quote=_BEYOND, section="7.3 Positive-Advantage Reweighting (Table 2)"),
    dict(paper=REV, a="pos_adv_epoch", b="non_positive", metric="accuracy_after", expect="greater", **ACC,
         quote=_BEYOND, section="7.3 Positive-Advantage Reweighting (Table 2)"),
    dict(paper=REV, a="pos_adv_entropy", b="baseline", metric="accuracy_after", expect="equivalent", **ACC,
         quote=_COMPETITIVE, section="7.3 Positive-Advantage Reweighting (Table 2)"),
    dict(paper=REV, a="pos_adv_stage", b="baseline", metric="accuracy_after", expect="equivalent", **ACC,
         quote=_COMPETITIVE, section="7.3 Positive-Advantage Reweighting (Table 2)"),
    dict(paper=REV, a="data_subset", b="baseline", metric="entropy_final", expect="less", **ENT,
         quote="entropy decreases as the amount of training data is reduced.",
         section="6.3 Training Data Diversity (Table 3)",
         note="data_subset trains on 600 of the 6000 problems (the paper: ~600 vs ~17k)"),
    dict(paper=REV, a="data_subset", b="baseline", metric="accuracy_after", expect="equivalent", **ACC,
         quote="an LLM trained on approximately 600 samples performs comparably to one trained on about 17k samples",
         section="8 Conclusion (Table 3)"),
]  # fmt: skip
