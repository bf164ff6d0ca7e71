"""transformers references for the model tests: left-padded batches, logits with positions from the mask, and
greedy ``generate`` continuations (imported by the tests beside it)."""

import numpy as np
import torch


def left_padded(rows, width, pad=0):
    """int64 ids and mask [len(rows), width] with each row's tokens at the right end."""
    ids = np.full((len(rows), width), pad, np.int64)
    mask = np.zeros((len(rows), width), np.int64)
    for r, row in enumerate(rows):
        ids[r, width - len(row) :] = row
        mask[r, width - len(row) :] = 1
    return ids, mask


def torch_logits(model, ids, mask):
    """float32 logits of a left-padded batch; positions from the mask (transformers' plain forward numbers
    columns, so a left-padded row would not start at position 0)."""
    pos = np.maximum(np.cumsum(mask, -1) - 1, 0)
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(pos)
        ).logits.numpy()


def max_logit_error(model, got, ids, mask):
    """max |got - transformers| over the non-padded positions."""
    valid = mask.astype(bool)
    return float(np.abs(np.asarray(got)[valid] - torch_logits(model, ids, mask)[valid]).max())


def hf_greedy(model, prompts, max_new_tokens, eos=None, pad=0):
    """transformers' greedy continuations of the left-padded prompts, padded with ``pad`` to max_new_tokens."""
    w = max(map(len, prompts))
    ids, mask = left_padded(prompts, w, pad)
    with torch.no_grad():
        ref = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
        )[:, w:].numpy()
    return np.pad(ref, ((0, 0), (0, max_new_tokens - ref.shape[1])), constant_values=pad)
