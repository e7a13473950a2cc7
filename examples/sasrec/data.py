"""Sequential-recommendation data: reading, leave-last-out split, padded tensors.

File format: one user per line, `user_id item item ...`, items in chronological order, item ids >= 1
(0 is the padding id).

Split (leave-last-out), for a user with items x_1 .. x_n:
    n >= 3: training history x_1 .. x_{n-2}, validation target x_{n-1}, test target x_n.
    n <  3: all items are training history; the user takes no part in validation or test.

Training examples (one per user whose history has >= 2 items): input x_1 .. x_{m-1}, targets x_2 .. x_m
(the next item at every position), both the last `maxlen` positions, left-padded with 0 / ignore_index.
The masked objective instead takes the history x_1 .. x_m itself (its last `maxlen` items, left-padded with 0;
`train_sequences`) and masks items of it per step (mask_batch).
"""

import torch

IGNORE_INDEX = -100


def read_sequences(path, max_users=None):
    """List of item-id lists, one per user, in file order; the first `max_users` users if given."""
    users = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            users.append([int(x) for x in parts[1:]])
            if max_users is not None and len(users) >= max_users:
                break
    if not users:
        raise ValueError(f"{path}: no users read")
    for items in users:
        for x in items:
            if x < 1:
                raise ValueError(f"{path}: item id {x} < 1 (0 is reserved for padding)")
    return users


def left_pad(seq, maxlen, pad):
    """The last `maxlen` entries of seq, left-padded with `pad` to exactly maxlen."""
    seq = seq[-maxlen:]
    return [pad] * (maxlen - len(seq)) + list(seq)


class EvalSet:
    """Full-catalog ranking examples, one per user: `inputs` [U, maxlen] left-padded item ids,
    `targets` [U] item ids (>= 1), and the items each user has already interacted with (the whole input
    history, not only its last maxlen items) in CSR form: for users a..b-1 the pairs
    seen_rows[seen_offsets[a]:seen_offsets[b]] (user index) and seen_items[...] (item id)."""

    def __init__(self, histories, targets, maxlen):
        self.inputs = torch.tensor([left_pad(h, maxlen, 0) for h in histories], dtype=torch.long)
        self.targets = torch.tensor(targets, dtype=torch.long)
        rows, items, offsets = [], [], [0]
        for u, h in enumerate(histories):
            uniq = sorted(set(h))
            rows.extend([u] * len(uniq))
            items.extend(uniq)
            offsets.append(len(rows))
        self.seen_rows = torch.tensor(rows, dtype=torch.long)
        self.seen_items = torch.tensor(items, dtype=torch.long)
        self.seen_offsets = offsets

    def __len__(self):
        return int(self.targets.shape[0])


class SeqData:
    def __init__(self, path, maxlen, max_users=None):
        self.users = read_sequences(path, max_users)
        self.num_items = max(max(items) for items in self.users)
        self.maxlen = maxlen
        self.num_short_users = sum(1 for items in self.users if len(items) < 3)
        self.num_interactions = sum(len(items) for items in self.users)

        train_in, train_tg, train_seq = [], [], []
        val_hist, val_tg, test_hist, test_tg = [], [], [], []
        for items in self.users:
            if len(items) >= 3:
                history = items[:-2]
                val_hist.append(history)
                val_tg.append(items[-2])
                test_hist.append(items[:-1])
                test_tg.append(items[-1])
            else:
                history = items
            if len(history) >= 2:
                train_in.append(left_pad(history[:-1], maxlen, 0))
                # Target item id t -> row t-1 of C = item_emb.weight[1:]; padding -> ignore_index.
                train_tg.append(left_pad([t - 1 for t in history[1:]], maxlen, IGNORE_INDEX))
                train_seq.append(left_pad(history, maxlen, 0))
        if not train_in:
            raise ValueError("no user has a training history of >= 2 items")
        self.train_inputs = torch.tensor(train_in, dtype=torch.long)  # [U_train, maxlen] item ids, 0 = pad
        self.train_targets = torch.tensor(train_tg, dtype=torch.long)  # [U_train, maxlen] rows of C or -100
        self.train_sequences = torch.tensor(train_seq, dtype=torch.long)  # [U_train, maxlen] the histories
        self.val = EvalSet(val_hist, val_tg, maxlen)
        self.test = EvalSet(test_hist, test_tg, maxlen)

    def target_counts(self, objective="next"):
        """[V] float64: how often each item is a training target (next: the shifted targets; masked: any item of
        the training sequences, each equally likely to be masked), the q of in-batch candidates."""
        if objective == "next":
            t = self.train_targets[self.train_targets != IGNORE_INDEX]
        else:
            t = self.train_sequences[self.train_sequences != 0] - 1
        return torch.bincount(t, minlength=self.num_items).double()

    def summary(self, objective="next"):
        return {
            "users": len(self.users),
            "items": self.num_items,
            "interactions": self.num_interactions,
            "train_sequences": int(self.train_inputs.shape[0]),
            "train_positions": int((self.train_targets != IGNORE_INDEX).sum()) if objective == "next" else
            int((self.train_sequences != 0).sum()),
            "eval_users": len(self.val),
            "short_users_train_only": self.num_short_users,
        }


def mask_batch(ids, mask_prob, mask_id, generator=None):
    """BERT4Rec-style masking of a batch ids [B, L] (0 = padding): each non-padding item is masked with
    probability mask_prob (a sequence with none masked gets one, at a random item of it). Returns the input with
    the masked items replaced by mask_id, positions [M] (flat indices into [B * L], the rows of the hidden states
    reshaped to [B * L, D]) and targets [M] (item id - 1: rows of C)."""
    real = ids != 0
    pick = (torch.rand(ids.shape, generator=generator, device=ids.device) < mask_prob) & real
    none = ~pick.any(1) & real.any(1)
    if bool(none.any()):
        # One random real item of each sequence that drew none: the largest random key among its real items.
        keys = torch.rand(ids.shape, generator=generator, device=ids.device).masked_fill(~real, -1.0)
        one = torch.zeros_like(pick).scatter_(1, keys.argmax(1, keepdim=True), True)
        pick = pick | (one & none[:, None])
    positions = pick.reshape(-1).nonzero().squeeze(1)
    targets = ids.reshape(-1)[positions] - 1
    return ids.masked_fill(pick, mask_id), positions, targets
