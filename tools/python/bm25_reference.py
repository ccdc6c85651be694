"""Reference BM25 tokens from chromadb's own tokenizer, for SextantTextTests.

Usage: bm25_reference.py RECORDS_JSONL_GZ OUT_JSON [EVERY]

Writes {"stopwords": [...], "stems": {word: stem}, "documents": [[text, [tokens]], ...]}:
the stem of every distinct lowercased word in the records' titles and bodies
(snowballstemmer's English stemmer, as chroma_bm25 uses it), and the full
token list of every EVERY-th record's body (chromadb's Bm25Tokenizer with its
default stop words and 40-character limit), plus a few hand-picked strings.
"""
import gzip
import json
import re
import sys

import snowballstemmer
from chromadb.utils.embedding_functions.schemas.bm25_tokenizer import (
    DEFAULT_CHROMA_BM25_STOPWORDS,
    Bm25Tokenizer,
    get_english_stemmer,
)

path, out = sys.argv[1], sys.argv[2]
every = int(sys.argv[3]) if len(sys.argv) > 3 else 8
stemmer = snowballstemmer.stemmer("english")
tokenizer = Bm25Tokenizer(get_english_stemmer(), DEFAULT_CHROMA_BM25_STOPWORDS, 40)
words = set()
documents = []
special = [
    "Ünïcödé façade naïve café — crème brûlée; straße İstanbul ΣΊΣΥΦΟΣ",
    "snake_case_identifier x86_64 libfoo-dev 1.2.3~rc1 ½ ² ٣ 七",
    "Don't stop: it's the users' choice (they'll say 'yes').",
    "a" * 41 + " " + "b" * 40 + " tab\tseparated\u001cunit\u001dseparated\u00a0nbsp",
    "yelling yell sky skies dying lying tying generously communities arsenal united pasted",
    "ΟΔΥΣΣΕΥΣ Σ ΣΑ ΑΣ. ΑΣ' ΑΣ1 ǅemal ﬁne ﬀ ΐ ẞ",
    "proceeding succeeded exceedingly evening inning canning outing earring herring cannings",
]
with gzip.open(path, "rt", encoding="utf-8") as f:
    for number, line in enumerate(f):
        record = json.loads(line)
        for text in (record.get("title") or "", record.get("body") or ""):
            words.update(re.sub(r"[^\w\s]+", " ", text).lower().split())
        if number % every == 0:
            body = record.get("body") or ""
            documents.append([body, tokenizer.tokenize(body)])
for text in special:
    words.update(re.sub(r"[^\w\s]+", " ", text).lower().split())
    documents.append([text, tokenizer.tokenize(text)])
stems = {word: stemmer.stemWord(word) for word in sorted(words)}
with open(out, "w", encoding="utf-8") as f:
    json.dump({"stopwords": sorted(DEFAULT_CHROMA_BM25_STOPWORDS), "stems": stems, "documents": documents}, f, ensure_ascii=False)
print(f"{len(stems)} words, {len(documents)} documents")
