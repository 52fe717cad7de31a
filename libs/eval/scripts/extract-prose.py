"""Builds libs/eval/data/vim-manual-prose.txt: prose paragraphs of the Vim user and reference manuals.

Run once by hand (python3 libs/eval/scripts/extract-prose.py); the harness reads only the output file.
Keeps paragraphs whose every line starts at column 0 with a letter-led text line and that end a sentence;
drops headings, examples (indented lines), tables and help-tag markup (|tag| -> tag, *tag* dropped).
"""
import glob
import re
import sys

# The user manual first (the most book-like prose), then the reference manual, until MAX_BYTES.
SRC = sorted(glob.glob('/usr/share/vim/vim90/doc/usr_*.txt')) + sorted(
    p for p in glob.glob('/usr/share/vim/vim90/doc/*.txt') if '/usr_' not in p
)
MAX_BYTES = 900_000
OUT = 'libs/eval/data/vim-manual-prose.txt'

paragraphs = []
for path in SRC:
    text = open(path, encoding='utf-8').read()
    for block in re.split(r'\n\s*\n', text):
        lines = block.split('\n')
        if not all(l and (l[0].isalpha() or l[0] in '"(\'') for l in lines):
            continue
        if any('\t' in l or '  ' in l.strip()[:1] for l in lines):
            continue
        para = ' '.join(l.strip() for l in lines)
        para = re.sub(r'\*[^*\s]+\*', '', para)
        para = re.sub(r'\|([^|\s]+)\|', r'\1', para)
        para = re.sub(r'\s+', ' ', para).strip()
        if len(para) < 120 or not para.endswith(('.', '!', '?', ':')) or para.endswith(':'):
            continue
        if para.count(' ') < 20:
            continue
        paragraphs.append(para)

seen = set()
uniq = []
total = 0
for p in paragraphs:
    if p in seen:
        continue
    seen.add(p)
    if total + len(p) + 2 > MAX_BYTES:
        break
    uniq.append(p)
    total += len(p.encode('utf-8')) + 2
body = '\n\n'.join(uniq) + '\n'
open(OUT, 'w', encoding='utf-8').write(body)
print(f'{len(SRC)} chapters, {len(uniq)} paragraphs, {len(body)} bytes, {len(body.split())} words', file=sys.stderr)
