/**
 * A minimal, valid, text-only PDF 1.4: one page per entry of `pages`, each line of a page (split on '\n') drawn in
 * Helvetica 12pt (a standard Type1 font, WinAnsiEncoding, nothing embedded) from the top-left margin down. An empty
 * string gives a page with no text. The xref table has exact byte offsets, so pdf.js needs no repair pass.
 */
export function makePdf(pages: readonly string[]): Uint8Array {
  if (pages.length === 0) throw new RangeError('makePdf needs at least one page');
  const objects: string[] = []; // objects[i] is object number i + 1
  const pageIds = pages.map((_, i) => 4 + 2 * i);
  objects.push('<< /Type /Catalog /Pages 2 0 R >>');
  objects.push(`<< /Type /Pages /Kids [${pageIds.map((id) => `${id} 0 R`).join(' ')}] /Count ${pages.length} >>`);
  objects.push('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>');
  for (const [i, text] of pages.entries()) {
    const contentId = pageIds[i]! + 1;
    objects.push(
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents ${contentId} 0 R >>`,
    );
    const lines = text === '' ? [] : text.split('\n');
    const stream = lines.length === 0 ? '' : `BT /F1 12 Tf 14 TL 72 720 Td ${lines.map((l) => `(${pdfString(l)}) Tj T*`).join(' ')} ET`;
    objects.push(`<< /Length ${stream.length} >>\nstream\n${stream}\nendstream`);
  }

  // Latin-1 throughout, so one character is one byte and string lengths are byte offsets.
  let out = '%PDF-1.4\n%\xe2\xe3\xcf\xd3\n';
  const offsets: number[] = [];
  for (const [i, body] of objects.entries()) {
    offsets.push(out.length);
    out += `${i + 1} 0 obj\n${body}\nendobj\n`;
  }
  const xrefAt = out.length;
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xrefAt}\n%%EOF\n`;
  return new Uint8Array(Buffer.from(out, 'latin1'));
}

/** A PDF literal string body; WinAnsi covers Latin-1, which is all these fixtures need. */
function pdfString(text: string): string {
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    // WinAnsi and Latin-1 agree on printable ASCII and 0xa0-0xff, not on 0x80-0x9f.
    if (c < 0x20 || (c > 0x7e && c < 0xa0) || c > 0xff) {
      throw new RangeError(`makePdf writes printable Latin-1 text only; got ${JSON.stringify(ch)}`);
    }
  }
  return text.replace(/[\\()]/g, (c) => `\\${c}`);
}
