#!/usr/bin/env python3
"""Token ids from Hugging Face's `tokenizers` for each line of a file, using the
tokenizer.json shipped with all-MiniLM-L6-v2, truncated to MAX tokens:
  tokenize_reference.py MODEL_DIR INPUT.jsonl MAX > OUTPUT.jsonl
INPUT holds one JSON string per line (so any text survives); OUTPUT one JSON list of ids per line."""
import json, sys
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file(f"{sys.argv[1]}/tokenizer.json")
tokenizer.enable_truncation(max_length=int(sys.argv[3]))
tokenizer.no_padding()
for line in open(sys.argv[2], encoding="utf-8"):
    print(json.dumps(tokenizer.encode(json.loads(line)).ids))
