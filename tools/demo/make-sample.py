#!/usr/bin/env python3
"""Regenerates debian-sample.jsonl.gz: every 13th record of debian-minilm
(id, title, body, metadata) with its all-MiniLM-L6-v2 vector from base.fvecs as
base64 float16 (`minilm_f16`), so `sextant up` loads the demo at once when the
MiniLM embedder is the default, and embeds the texts itself otherwise.

  .venv-test/bin/python tools/demo/make-sample.py ../shared/data/debian-minilm
"""
import base64, gzip, json, sys
import numpy as np

data = sys.argv[1]
base = np.fromfile(f"{data}/base.fvecs", dtype=np.float32).reshape(-1, 385)[:, 1:]
out = gzip.open(sys.argv[2] if len(sys.argv) > 2 else "tools/demo/debian-sample.jsonl.gz", "wt", encoding="utf-8")
count = 0
for index, line in enumerate(gzip.open(f"{data}/records.jsonl.gz", "rt", encoding="utf-8")):
    if index % 13:
        continue
    record = json.loads(line)
    record["minilm_f16"] = base64.b64encode(base[index].astype("<f2").tobytes()).decode()
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
    count += 1
out.close()
print(f"{count} records")
