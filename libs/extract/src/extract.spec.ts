import { deflateRawSync } from 'node:zlib';
import { AppError, type ErrorCode } from '@lib/shared';
import mammoth from 'mammoth';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { withDeadline } from './deadline.js';
import { DOCUMENT_KINDS, documentKind, extractText, type DocumentKind, type ExtractLimits } from './index.js';
import { crc32, makeDocx, makePdf, makeZip } from './testing/index.js';

const LIMITS: ExtractLimits = { maxChars: 100_000, maxPdfPages: 50, maxDocxUncompressedBytes: 10_000_000, timeoutMs: 10_000 };
const utf8 = (s: string) => new TextEncoder().encode(s);

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}
async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<AppError> {
  const err = await rejection(promise);
  expect(err.code, err.message).toBe(code);
  return err;
}
function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a throw');
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('documentKind', () => {
  it.each([
    ['notes.txt', 'txt'],
    ['README.md', 'md'],
    ['guide.markdown', 'md'],
    ['page.html', 'html'],
    ['page.HTM', 'html'],
    ['paper.pdf', 'pdf'],
    ['Report.Final.DOCX', 'docx'],
    ['C:\\fakepath\\scan.pdf', 'pdf'],
    ['dir/sub/page.htm', 'html'],
  ] as const)('%s -> %s from the extension', (name, kind) => {
    expect(documentKind(name, undefined)).toBe(kind);
  });

  it.each([
    ['text/plain', 'txt'],
    ['text/plain; charset=utf-8', 'txt'],
    ['text/markdown', 'md'],
    ['TEXT/HTML', 'html'],
    ['application/xhtml+xml', 'html'],
    ['application/pdf', 'pdf'],
    ['application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'docx'],
  ] as const)('%s -> %s from the MIME type when there is no extension', (mime, kind) => {
    expect(documentKind(undefined, mime)).toBe(kind);
    expect(documentKind('upload', mime)).toBe(kind);
  });

  it('prefers a known extension over the MIME type, and ignores generic MIME types', () => {
    expect(documentKind('notes.md', 'text/plain')).toBe('md');
    expect(documentKind('paper.pdf', 'application/octet-stream')).toBe('pdf');
    expect(documentKind('blob', 'application/pdf')).toBe('pdf');
  });

  it.each([
    ['photo.png', 'image/png'],
    ['old.doc', 'application/msword'],
    ['data.csv', undefined],
    ['archive.zip', 'application/zip'],
    [undefined, undefined],
    ['noext', undefined],
    ['.bashrc', undefined],
    ['blob', 'application/octet-stream'],
    [undefined, 'image/jpeg'],
  ])('%s (%s) -> UNSUPPORTED_MEDIA_TYPE', (name, mime) => {
    const err = thrown(() => documentKind(name, mime));
    expect(err.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect(err.details?.supported).toEqual([...DOCUMENT_KINDS]);
  });
});

describe('extractText: txt and md', () => {
  it('returns UTF-8 text as is, without the byte-order mark', async () => {
    expect(await extractText(utf8('\ufeffHéllo\nwörld 🌍'), 'txt', LIMITS)).toBe('Héllo\nwörld 🌍');
    expect(await extractText(utf8('# Title\n\n- item'), 'md', LIMITS)).toBe('# Title\n\n- item');
  });

  it('keeps the UTF-8, emptiness and size checks of decodeDocument', async () => {
    await expectCode(extractText(new Uint8Array([0x68, 0xff, 0x69]), 'txt', LIMITS), 'INPUT_INVALID_UTF8');
    await expectCode(extractText(utf8('  \n\t '), 'md', LIMITS), 'INPUT_EMPTY');
    await expectCode(extractText(utf8('x'.repeat(11)), 'txt', { ...LIMITS, maxChars: 10 }), 'INPUT_TOO_LARGE');
  });

  it.each(DOCUMENT_KINDS)('empty bytes as %s -> INPUT_EMPTY', async (kind) => {
    await expectCode(extractText(new Uint8Array(0), kind, LIMITS), 'INPUT_EMPTY');
  });
});

describe('extractText: html', () => {
  const page = `<!DOCTYPE html>
<html><head><title>Not shown</title><meta charset="utf-8"><style>body { color: red }</style>
<script>var hidden = "script text"; if (a < b) {}</script></head>
<body>
  <!-- a comment, <p>not shown</p> -->
  <h1>Caf&eacute; &amp; Bar</h1>
  <p>First   paragraph,
     with <b>bold</b> and <a href="#">a link</a>.</p>
  <SCRIPT type="module">document.write("<p>injected</p>")</SCRIPT>
  <div>Line one<br>Line two</div>
  <noscript>Enable JavaScript</noscript>
  <ul><li>apple</li><li>pear &lt;ripe&gt;</li></ul>
  <div hidden>secret</div>
  <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
  <pre>  indented
    code</pre>
  <p>&#8220;quoted&#8221;&nbsp;end</p>
</body></html>`;

  it('returns only the visible text, blocks on their own lines, entities decoded', async () => {
    const text = await extractText(utf8(page), 'html', LIMITS);
    expect(text).toBe(
      [
        'Café & Bar',
        '',
        'First paragraph, with bold and a link.',
        '',
        'Line one',
        'Line two',
        'apple',
        'pear <ripe>',
        '',
        'k\tv',
        'a\t1',
        '',
        '  indented',
        '    code',
        '',
        '\u201cquoted\u201d\u00a0end',
      ].join('\n'),
    );
    for (const hidden of ['DOCTYPE', 'comment', 'Not shown', 'not shown', 'color', 'script text', 'injected', 'Enable JavaScript', 'secret']) {
      expect(text).not.toContain(hidden);
    }
  });

  it('holds maxChars against the text, not the markup', async () => {
    const html = `<div style="${'x'.repeat(500)}">short</div>`;
    expect(await extractText(utf8(html), 'html', { ...LIMITS, maxChars: 10 })).toBe('short');
    await expectCode(extractText(utf8(`<p>${'y'.repeat(11)}</p>`), 'html', { ...LIMITS, maxChars: 10 }), 'INPUT_TOO_LARGE');
  });

  it('a page with nothing visible -> INPUT_EMPTY', async () => {
    await expectCode(extractText(utf8('<html><head><title>t</title></head><body><script>x()</script> </body></html>'), 'html', LIMITS), 'INPUT_EMPTY');
  });

  it('drops an XML declaration and doctype (XHTML)', async () => {
    const xhtml = '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Body</p></body></html>';
    expect(await extractText(utf8(xhtml), 'html', LIMITS)).toBe('Body');
  });

  it('HTML that is not UTF-8 -> INPUT_INVALID_UTF8', async () => {
    await expectCode(extractText(new Uint8Array([0x3c, 0x70, 0x3e, 0xe9, 0x3c]), 'html', LIMITS), 'INPUT_INVALID_UTF8');
  });
});

describe('extractText: pdf', () => {
  it('extracts the text of one page, a line per line', async () => {
    const pdf = makePdf(['Hello (PDF) world\\', 'Second line: caf\u00e9']);
    expect(await extractText(makePdf(['Hello (PDF) world\\\nSecond line: caf\u00e9']), 'pdf', LIMITS)).toBe(
      'Hello (PDF) world\\\nSecond line: caf\u00e9',
    );
    expect(pdf.subarray(0, 5)).toEqual(utf8('%PDF-'));
  });

  it('ends each page with a form feed on a line of its own', async () => {
    expect(await extractText(makePdf(['Page one', 'Page two', 'Page three']), 'pdf', LIMITS)).toBe(
      'Page one\n\f\nPage two\n\f\nPage three',
    );
  });

  it("leaves the caller's bytes intact", async () => {
    const bytes = makePdf(['keep me']);
    const copy = bytes.slice();
    await extractText(bytes, 'pdf', LIMITS);
    expect(bytes).toEqual(copy);
  });

  it('a file that is not a PDF -> DOCUMENT_UNREADABLE', async () => {
    const err = await expectCode(extractText(utf8('just some text, named .pdf'), 'pdf', LIMITS), 'DOCUMENT_UNREADABLE');
    expect(err.message).toMatch(/%PDF-/);
  });

  it('a corrupt PDF -> DOCUMENT_UNREADABLE', async () => {
    await expectCode(extractText(utf8('%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage \x01\x02'), 'pdf', LIMITS), 'DOCUMENT_UNREADABLE');
  });

  it('more pages than maxPdfPages -> INPUT_TOO_LARGE', async () => {
    const err = await expectCode(extractText(makePdf(['a', 'b', 'c']), 'pdf', { ...LIMITS, maxPdfPages: 2 }), 'INPUT_TOO_LARGE');
    expect(err.details).toEqual({ pages: 3, limit: 2 });
    expect(await extractText(makePdf(['a', 'b']), 'pdf', { ...LIMITS, maxPdfPages: 2 })).toBe('a\n\f\nb');
  });

  it('text longer than maxChars -> INPUT_TOO_LARGE', async () => {
    await expectCode(extractText(makePdf(['x'.repeat(60), 'y'.repeat(60)]), 'pdf', { ...LIMITS, maxChars: 100 }), 'INPUT_TOO_LARGE');
  });

  it('a PDF without text -> INPUT_EMPTY', async () => {
    await expectCode(extractText(makePdf(['']), 'pdf', LIMITS), 'INPUT_EMPTY');
    await expectCode(extractText(makePdf(['', '']), 'pdf', LIMITS), 'INPUT_EMPTY');
  });

  it('keeps empty pages as page breaks, so page numbers stay right', async () => {
    expect(await extractText(makePdf(['one', '', 'three']), 'pdf', LIMITS)).toBe('one\n\f\n\n\f\nthree');
    const sparse = makePdf(['one', '', '', 'four']);
    const text = 'one\n\f\n\n\f\n\n\f\nfour';
    expect(await extractText(sparse, 'pdf', { ...LIMITS, maxChars: text.length })).toBe(text);
    await expectCode(extractText(sparse, 'pdf', { ...LIMITS, maxChars: text.length - 1 }), 'INPUT_TOO_LARGE');
  });

  it('parsing past timeoutMs -> DOCUMENT_UNREADABLE', async () => {
    const pages = Array.from({ length: 300 }, (_, i) => `page ${i}`);
    const err = await expectCode(extractText(makePdf(pages), 'pdf', { ...LIMITS, maxPdfPages: 1000, timeoutMs: 1 }), 'DOCUMENT_UNREADABLE');
    expect(err.details).toMatchObject({ reason: 'timeout' });
  });
});

describe('extractText: docx', () => {
  it('extracts the paragraphs with mammoth', async () => {
    const docx = makeDocx(['First paragraph.', 'Second & <third> "quoted"', '', '', 'After two empty ones.']);
    expect(await extractText(docx, 'docx', LIMITS)).toBe(
      'First paragraph.\n\nSecond & <third> "quoted"\n\nAfter two empty ones.',
    );
  });

  it('reads a zip64 DOCX', async () => {
    expect(await extractText(makeDocx(['Zip64 body'], { zip64: true }), 'docx', LIMITS)).toBe('Zip64 body');
  });

  it('a file that is not a zip -> DOCUMENT_UNREADABLE', async () => {
    await expectCode(extractText(utf8('plain text named .docx'), 'docx', LIMITS), 'DOCUMENT_UNREADABLE');
    const ole = new Uint8Array([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1, 0, 0, 0, 0]);
    const err = await expectCode(extractText(ole, 'docx', LIMITS), 'DOCUMENT_UNREADABLE');
    expect(err.message).toMatch(/legacy Word/);
  });

  it('a corrupt DOCX -> DOCUMENT_UNREADABLE', async () => {
    const good = makeDocx(['text']);
    const corrupt: Uint8Array[] = [
      new Uint8Array([0x50, 0x4b, 0x03, 0x04, ...utf8('garbage after the zip magic')]),
      good.subarray(0, good.length - 30), // cut through the end record
      good.subarray(0, Math.floor(good.length / 2)),
      makeZip([{ name: 'hello.txt', data: 'a zip, but no word/document.xml' }]),
      makeDocx(['text'], { extraEntries: [{ name: 'word/bad.xml', data: deflateRawSync(Buffer.alloc(10)), method: 'store', declaredUncompressedSize: 99 }] }),
    ];
    const flipped = good.slice();
    const docAt = Buffer.from(flipped).indexOf('word/document.xml') + 'word/document.xml'.length;
    for (let i = docAt + 5; i < docAt + 25; i++) flipped[i] = flipped[i]! ^ 0xff; // deflate stream of document.xml
    corrupt.push(flipped);
    for (const bytes of corrupt) await expectCode(extractText(bytes, 'docx', LIMITS), 'DOCUMENT_UNREADABLE');
  });

  it('a zip bomb (an entry declaring 2 GB) -> INPUT_TOO_LARGE before mammoth runs', async () => {
    const spy = vi.spyOn(mammoth, 'extractRawText');
    const bomb = makeDocx(['hi'], { extraEntries: [{ name: 'word/media/bomb.bin', data: 'tiny', declaredUncompressedSize: 2 ** 31 }] });
    const err = await expectCode(extractText(bomb, 'docx', LIMITS), 'INPUT_TOO_LARGE');
    expect(err.details).toMatchObject({ limit: LIMITS.maxDocxUncompressedBytes });
    expect(err.details!.uncompressedBytes).toBeGreaterThan(2 ** 31);
    const zip64Bomb = makeDocx(['hi'], { zip64: true, extraEntries: [{ name: 'x.bin', data: 'tiny', declaredUncompressedSize: 2 ** 40 }] });
    await expectCode(extractText(zip64Bomb, 'docx', LIMITS), 'INPUT_TOO_LARGE');
    expect(spy).not.toHaveBeenCalled();
  });

  it('counts every entry toward maxDocxUncompressedBytes', async () => {
    const docx = makeDocx(['hi'], { extraEntries: [{ name: 'word/media/pad.bin', data: new Uint8Array(5000) }] });
    await expectCode(extractText(docx, 'docx', { ...LIMITS, maxDocxUncompressedBytes: 5000 }), 'INPUT_TOO_LARGE');
    expect(await extractText(docx, 'docx', { ...LIMITS, maxDocxUncompressedBytes: 10_000 })).toBe('hi');
  });

  it('an entry that inflates past its declared size is refused without inflating it all', async () => {
    const spy = vi.spyOn(mammoth, 'extractRawText');
    const liar = makeDocx(['hi'], { extraEntries: [{ name: 'word/liar.xml', data: new Uint8Array(50_000_000), declaredUncompressedSize: 100 }] });
    const err = await expectCode(extractText(liar, 'docx', LIMITS), 'DOCUMENT_UNREADABLE');
    expect(err.message).toMatch(/more than the 100 bytes it declares/);
    expect(spy).not.toHaveBeenCalled();
  });

  it('mammoth running past timeoutMs -> DOCUMENT_UNREADABLE', async () => {
    vi.spyOn(mammoth, 'extractRawText').mockReturnValue(new Promise(() => undefined));
    const err = await expectCode(extractText(makeDocx(['slow']), 'docx', { ...LIMITS, timeoutMs: 20 }), 'DOCUMENT_UNREADABLE');
    expect(err.details).toMatchObject({ reason: 'timeout', timeoutMs: 20 });
  });

  it('text longer than maxChars -> INPUT_TOO_LARGE', async () => {
    await expectCode(extractText(makeDocx(['z'.repeat(200)]), 'docx', { ...LIMITS, maxChars: 100 }), 'INPUT_TOO_LARGE');
  });

  it('a DOCX with no text -> INPUT_EMPTY', async () => {
    await expectCode(extractText(makeDocx(['', '']), 'docx', LIMITS), 'INPUT_EMPTY');
  });
});

describe('limits and deadlines', () => {
  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])('a limit of %s is a bug (INTERNAL)', async (bad) => {
    await expectCode(extractText(utf8('x'), 'txt', { ...LIMITS, timeoutMs: bad }), 'INTERNAL');
  });

  it('withDeadline rejects at the deadline and tells the work through check()', async () => {
    let checked: unknown;
    const onTimeout = vi.fn();
    const err = await expectCode(
      withDeadline(10, 'the work', async (deadline) => {
        await new Promise((r) => setTimeout(r, 40));
        try {
          deadline.check();
        } catch (e) {
          checked = e;
        }
        throw new Error('late failure, ignored');
      }, onTimeout),
      'DOCUMENT_UNREADABLE',
    );
    expect(err.message).toBe('the work took longer than 10 ms');
    expect(onTimeout).toHaveBeenCalledOnce();
    await new Promise((r) => setTimeout(r, 60));
    expect((checked as AppError).code).toBe('DOCUMENT_UNREADABLE');
  });

  it('withDeadline passes results and errors through before the deadline', async () => {
    expect(await withDeadline(1000, 'w', async () => 42)).toBe(42);
    await expectCode(withDeadline(1000, 'w', async () => { throw new AppError('INPUT_EMPTY', 'x'); }), 'INPUT_EMPTY');
  });
});

describe('testing helpers', () => {
  it('crc32 matches the standard check value', () => {
    expect(crc32(utf8('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('makePdf writes an xref whose offsets point at the objects', () => {
    const pdf = Buffer.from(makePdf(['a', 'b'])).toString('latin1');
    const xrefAt = Number(/startxref\n(\d+)\n%%EOF/.exec(pdf)![1]);
    expect(pdf.slice(xrefAt, xrefAt + 4)).toBe('xref');
    const offsets = [...pdf.slice(xrefAt).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
    expect(offsets).toHaveLength(7);
    offsets.forEach((off, i) => expect(pdf.slice(off, off + `${i + 1} 0 obj`.length)).toBe(`${i + 1} 0 obj`));
  });

  it('makePdf refuses text Helvetica/WinAnsi cannot show', () => {
    expect(() => makePdf(['\u4e2d'])).toThrow(RangeError);
  });

  it('every kind name is a DocumentKind', () => {
    const kinds: readonly DocumentKind[] = DOCUMENT_KINDS;
    expect(kinds).toEqual(['txt', 'md', 'html', 'pdf', 'docx']);
  });
});
