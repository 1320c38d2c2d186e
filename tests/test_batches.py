"""Teacher-forced batches: padding, labels and the positions that predict answer tokens."""

import torch

from core.data.batches import IGNORE, answer_tokens, predicts_answer, teacher_forced_batch


def test_rows_are_right_padded_with_labels_only_on_answer_tokens():
    ids, attention, labels = teacher_forced_batch([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7, 9, 10], [8, 11, 12, 13, 0]]
    assert attention.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert labels.tolist() == [[IGNORE, IGNORE, IGNORE, 9, 10], [IGNORE, 11, 12, 13, IGNORE]]


def test_predicts_answer_marks_the_position_before_each_answer_token():
    ids, _, labels = teacher_forced_batch([[5, 6, 7], [8]], [[9, 10], [11, 12, 13]], pad_id=0)
    predicts = predicts_answer(labels)
    assert predicts.tolist() == [[False, False, True, True, False], [True, True, True, False, False]]
    # The tokens those positions predict are exactly the answers, in order.
    next_tokens = torch.roll(ids, -1, dims=1)[predicts]
    assert next_tokens.tolist() == [9, 10, 11, 12, 13]
    # answer_tokens lists them in the same order, so logits taken at `predicts` line up with them.
    assert answer_tokens(labels).tolist() == next_tokens.tolist()
