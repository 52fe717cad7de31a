/** Fixture builders for tests (this package's and the API's e2e tests): documents built in code, no binary files. */
export { makePdf } from './make-pdf.js';
export { makeDocx, type MakeDocxOptions } from './make-docx.js';
export { makeZip, crc32, type MakeZipOptions, type ZipEntryInput } from './zip.js';
