"""Planted problem: main-loop-preprocessing, in a loop with no optimizer and no DataLoader. A
language model trained as pytorch/examples word_language_model trains it: batches cut by hand from
one token tensor, plain SGD written out (`p.data.add_(p.grad, alpha=-lr)`), an evaluation pass and
a `torch.save(model, f)` checkpoint after each epoch. Each step is one backward(). The planted cost:
every batch is re-encoded in Python, token by token, inside the loop."""

import argparse
import os
import tempfile
import time

import torch
from torch import nn


class LanguageModel(nn.Module):
    def __init__(self, tokens: int, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(tokens, width)
        self.rnn = nn.LSTM(width, width, batch_first=False)
        self.decode = nn.Linear(width, tokens)

    def forward(self, x: torch.Tensor, hidden: tuple[torch.Tensor, torch.Tensor]):
        output, hidden = self.rnn(self.embed(x), hidden)
        return self.decode(output), hidden


def batchify(data: torch.Tensor, batch_size: int) -> torch.Tensor:
    columns = data.size(0) // batch_size
    return data[: columns * batch_size].view(batch_size, -1).t().contiguous()


def get_batch(source: torch.Tensor, i: int, bptt: int, encode_ms: float):
    length = min(bptt, len(source) - 1 - i)
    data, target = source[i : i + length], source[i + 1 : i + 1 + length].reshape(-1)
    # Per-token work in the loop (a Python tokenizer, say): a fixed amount of CPU time, which a
    # busy machine stretches like any other work (a wall-clock deadline would not be).
    deadline = time.thread_time() + encode_ms / 1000
    while time.thread_time() < deadline:
        pass
    return data, target


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--encode-ms", type=float, default=25.0)
    args = parser.parse_args()
    torch.manual_seed(0)
    vocabulary, bptt, lr = 200, 10, 5.0
    stream = torch.randint(0, vocabulary, (args.tokens,), generator=torch.Generator().manual_seed(0))
    train, valid = batchify(stream[: args.tokens * 9 // 10], 16), batchify(stream[args.tokens * 9 // 10 :], 8)
    model, criterion = LanguageModel(vocabulary, 32), nn.CrossEntropyLoss()
    checkpoint = os.path.join(tempfile.mkdtemp(), "model.pt")
    for epoch in range(args.epochs):
        model.train()
        hidden = (torch.zeros(1, 16, 32), torch.zeros(1, 16, 32))
        for i in range(0, train.size(0) - 1, bptt):
            data, target = get_batch(train, i, bptt, args.encode_ms)
            hidden = tuple(h.detach() for h in hidden)
            model.zero_grad()
            output, hidden = model(data, hidden)
            criterion(output.view(-1, vocabulary), target).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
        model.eval()
        with torch.no_grad():
            hidden, loss = (torch.zeros(1, 8, 32), torch.zeros(1, 8, 32)), 0.0
            for i in range(0, valid.size(0) - 1, bptt):
                data, target = get_batch(valid, i, bptt, 0.0)
                output, hidden = model(data, hidden)
                loss += criterion(output.view(-1, vocabulary), target).item()
        with open(checkpoint, "wb") as f:
            torch.save(model, f)  # the whole model, as word_language_model checkpoints it
        print(f"epoch {epoch}: validation loss {loss:.2f}")


if __name__ == "__main__":
    main()
