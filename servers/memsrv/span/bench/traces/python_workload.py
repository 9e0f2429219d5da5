# The python3 program traced for python.trace (see README.md here): a small
# document-processing job whose memory comes and goes in waves of different
# sizes: build a JSON document, serialise and parse it, index its words,
# grow and drop byte buffers, sort.
import json
import random

random.seed(11)
WORDS = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(3, 12)))
         for _ in range(5000)]

for wave in range(6):
    doc = [{"id": i, "text": " ".join(random.choices(WORDS, k=random.randint(5, 60))),
            "tags": random.sample(WORDS, 3)} for i in range(20000 + 10000 * wave)]
    text = json.dumps(doc)
    back = json.loads(text)
    index = {}
    for entry in back:
        for word in entry["text"].split():
            index.setdefault(word, []).append(entry["id"])
    buffers = [bytearray(random.randint(1, 64) * 65536) for _ in range(8 + wave * 4)]
    for b in buffers:
        b.extend(b[: len(b) // 2])
    ranked = sorted(index.items(), key=lambda kv: -len(kv[1]))[:100]
    del doc, text, back, buffers
    print(wave, len(index), ranked[0][0])
    del index, ranked
