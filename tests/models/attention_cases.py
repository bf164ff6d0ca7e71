"""The attention test case shared by tests/models/test_attention.py and test_attention_kernels.py (its
q / k / v: the ``qkv`` fixture in tests/models/conftest.py): f32, GQA (2 query heads per kv head), a length
that is not a multiple of any block, one row of three packed sequences with an empty tail and one
left-padded row."""

B, T, N, KV, H = 2, 37, 4, 2, 8
SEG = [[1] * 10 + [2] * 20 + [3] * 5 + [0] * 2, [1] * 37]  # row 0: three packed sequences and an empty tail
KV_MASK = [[1] * 35 + [0] * 2, [0] * 5 + [1] * 32]  # row 1: left padding
