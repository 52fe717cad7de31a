import { makeZip, type MakeZipOptions, type ZipEntryInput } from './zip.js';

const CONTENT_TYPES = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>`;

const ROOT_RELS = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
</Relationships>`;

export interface MakeDocxOptions extends MakeZipOptions {
  /** More zip entries, appended after the three a DOCX needs (e.g. a bomb entry for tests). */
  extraEntries?: readonly ZipEntryInput[];
}

/**
 * A minimal DOCX that Word and mammoth open: [Content_Types].xml, _rels/.rels and word/document.xml with one
 * `w:p` per paragraph. A paragraph may be empty.
 */
export function makeDocx(paragraphs: readonly string[], options: MakeDocxOptions = {}): Uint8Array {
  const body = paragraphs
    .map((p) => (p === '' ? '<w:p/>' : `<w:p><w:r><w:t xml:space="preserve">${escapeXml(p)}</w:t></w:r></w:p>`))
    .join('');
  const document = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>${body}</w:body></w:document>`;
  return makeZip([
    { name: '[Content_Types].xml', data: CONTENT_TYPES },
    { name: '_rels/.rels', data: ROOT_RELS },
    { name: 'word/document.xml', data: document },
    ...(options.extraEntries ?? []),
  ], options);
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
}
