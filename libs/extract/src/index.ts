export { DOCUMENT_KINDS, documentKind, type DocumentKind } from './document-kind.js';
export { extractText, type ExtractLimits } from './extract.js';
export { ExtractionPool, type ExtractionPoolOptions } from './isolated.js';
