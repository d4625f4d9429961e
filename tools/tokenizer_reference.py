#!/usr/bin/env python3
"""A second, independent BERT WordPiece tokenizer, to check lib/bert/tokenizer.ts against.

Written from the algorithm of google-research/bert tokenization.py (BasicTokenizer + WordpieceTokenizer),
character by character with Python's `unicodedata`, so it shares no code and no Unicode tables with the
TypeScript one (which uses regular expressions and V8's tables). Python only; nothing to install.

    # JSON strings on stdin -> JSON id arrays, one per line (same as `normtune tokenize`)
    python3 tools/tokenizer_reference.py tokenize --vocab DIR/vocab.txt < texts.jsonl > ids.jsonl
    # digests of the token ids of every GLUE text column -> tests/fixtures/tokenizer_glue_digest.json
    python3 tools/tokenizer_reference.py glue --vocab DIR/vocab.txt --glue ../shared/glue > digest.json

It covers what GLUE text exercises. lib/bert/tokenizer.ts also follows Hugging Face's BertTokenizer where
that departs from the 2018 file on text GLUE does not contain (special tokens such as "[MASK]" written in
the text, never_split, NFC before accent handling, per-character lowercasing of a word-final capital
sigma); tests/bert/tokenizer_test.ts checks those cases against HF's published expectations.

Options: --cased (do_lower_case false), --control C|CcCf (which categories clean-up drops: every C*, as
Hugging Face does, or only Cc/Cf as the 2018 original), --max-chars N (100 as Hugging Face; the original 200).
"""

import argparse
import hashlib
import json
import os
import sys
import unicodedata

# (task, file, header expected?, text columns): how GLUE lays out its TSVs.
GLUE_FILES = [
    ("CoLA", "train.tsv", None, [3]),
    ("CoLA", "dev.tsv", None, [3]),
    ("SST-2", "train.tsv", ["sentence", "label"], [0]),
    ("SST-2", "dev.tsv", ["sentence", "label"], [0]),
    ("MRPC", "train.tsv", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], [3, 4]),
    ("MRPC", "dev.tsv", ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"], [3, 4]),
    ("STS-B", "train.tsv", ["index", "genre", "filename", "year", "old_index", "source1", "source2",
                            "sentence1", "sentence2", "score"], [7, 8]),
    ("STS-B", "dev.tsv", ["index", "genre", "filename", "year", "old_index", "source1", "source2",
                          "sentence1", "sentence2", "score"], [7, 8]),
    ("RTE", "train.tsv", ["index", "sentence1", "sentence2", "label"], [1, 2]),
    ("RTE", "dev.tsv", ["index", "sentence1", "sentence2", "label"], [1, 2]),
    ("WNLI", "train.tsv", ["index", "sentence1", "sentence2", "label"], [1, 2]),
    ("WNLI", "dev.tsv", ["index", "sentence1", "sentence2", "label"], [1, 2]),
    ("QNLI", "dev.tsv", ["index", "question", "sentence", "label"], [1, 2]),
]


def load_vocab(path):
    ids = {}
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for i, line in enumerate(lines):
        ids[line[:-1] if line.endswith("\r") else line] = i
    return ids


class Reference:
    def __init__(self, vocab, lower=True, control="C", max_chars=100):
        self.vocab = vocab
        self.lower = lower
        self.control = control
        self.max_chars = max_chars
        self.unk = vocab["[UNK]"]

    def is_control(self, ch):
        if ch in "\t\n\r":
            return False
        cat = unicodedata.category(ch)
        return cat[0] == "C" if self.control == "C" else cat in ("Cc", "Cf")

    @staticmethod
    def is_space(ch):
        return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"

    @staticmethod
    def is_cjk(cp):
        ranges = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
                  (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
        return any(lo <= cp <= hi for lo, hi in ranges)

    @staticmethod
    def is_punct(ch):
        cp = ord(ch)
        if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
            return True
        return unicodedata.category(ch).startswith("P")

    def basic(self, text):
        chars = []
        for ch in text:
            if ord(ch) in (0, 0xFFFD) or self.is_control(ch):
                continue
            if self.is_space(ch):
                chars.append(" ")
            elif self.is_cjk(ord(ch)):
                chars.extend([" ", ch, " "])
            else:
                chars.append(ch)
        words = []
        for word in "".join(chars).split():
            if self.lower:
                word = word.lower()
                word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = ""
            for ch in word:
                if self.is_punct(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        # The original re-joins and re-splits on whitespace here.
        return " ".join(words).split()

    def wordpiece(self, word):
        if len(word) > self.max_chars:
            return [self.unk]
        pieces = []
        start = 0
        while start < len(word):
            for end in range(len(word), start, -1):
                sub = word[start:end] if start == 0 else "##" + word[start:end]
                if sub in self.vocab:
                    pieces.append(self.vocab[sub])
                    start = end
                    break
            else:
                return [self.unk]
        return pieces

    def ids(self, text):
        out = []
        for word in self.basic(text):
            out.extend(self.wordpiece(word))
        return out


def read_tsv(path, header, columns):
    """Tab-split lines, quotes never interpreted; BOM stripped; the last line may lack its newline."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if header is not None:
        got = lines.pop(0).split("\t")
        if got != header:
            sys.exit(f"{path}: header {got} is not {header}")
    texts = []
    for n, line in enumerate(lines, 2 if header else 1):
        cells = line.split("\t")
        if max(columns) >= len(cells):
            sys.exit(f"{path}:{n}: {len(cells)} columns, expected more than {max(columns)}")
        texts.extend(cells[c] for c in columns)
    return len(lines), texts


def glue_digest(ref, glue_dir):
    files = {}
    for task, name, header, columns in GLUE_FILES:
        rows, texts = read_tsv(os.path.join(glue_dir, task, name), header, columns)
        h = hashlib.sha256()
        tokens = 0
        for t in texts:
            ids = ref.ids(t)
            tokens += len(ids)
            h.update((json.dumps(ids, separators=(",", ":")) + "\n").encode())
        files[f"{task}/{name}"] = {"rows": rows, "texts": len(texts), "tokens": tokens, "sha256": h.hexdigest()}
    return files


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["tokenize", "glue"])
    p.add_argument("--vocab", required=True)
    p.add_argument("--glue")
    p.add_argument("--cased", action="store_true")
    p.add_argument("--control", choices=["C", "CcCf"], default="C")
    p.add_argument("--max-chars", type=int, default=100)
    a = p.parse_args()
    ref = Reference(load_vocab(a.vocab), lower=not a.cased, control=a.control, max_chars=a.max_chars)
    if a.mode == "tokenize":
        out = sys.stdout
        for n, line in enumerate(sys.stdin.buffer, 1):
            text = json.loads(line.decode("utf-8", "surrogatepass"))
            if not isinstance(text, str):
                sys.exit(f"stdin line {n}: expected a JSON string")
            out.write(json.dumps(ref.ids(text), separators=(",", ":")) + "\n")
    else:
        if not a.glue:
            sys.exit("glue mode needs --glue DIR")
        files = glue_digest(ref, a.glue)
        print(json.dumps({
            "about": "SHA-256 of the WordPiece ids (one JSON array per text, '\\n'-terminated, compact) of every "
                     "text column of each GLUE file, in row order then column order; made by "
                     "tools/tokenizer_reference.py glue with the bert-base-uncased vocab (bert-tiny-mlm).",
            "unicode": unicodedata.unidata_version,
            "files": files,
        }, indent=2))


if __name__ == "__main__":
    main()
