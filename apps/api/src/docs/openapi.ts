import { createReadStream } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Controller, Get, Header, Param, Res, StreamableFile } from '@nestjs/common';
import type { Response } from 'express';
import { z } from 'zod';
import { BatchListPageSchema, BatchResultLineSchema, CreateBatchForm, CreateBatchJson, PublicBatchSchema } from '@lib/shared';
import { AppError, CreateDocumentJson, CreateJobJson, DeletedSchema, DocumentListPageSchema, ERROR_CODES, JobListPageSchema, JobOptions, ModelListSchema, PublicDocumentSchema, PublicJobSchema, STREAM_EVENT_ID, TenantPurgeSchema } from '@lib/shared';

/** A request schema (what a client may send: defaults not yet applied) and a response schema (what it receives). */
const schema = (s: z.ZodType) => strip(z.toJSONSchema(s, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }));
const response = (s: z.ZodType) => strip(z.toJSONSchema(s, { target: 'draft-2020-12', io: 'output', unrepresentable: 'any' }));
/** OpenAPI 3.1 schema objects are JSON Schema 2020-12 without the $schema line. */
function strip(s: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _drop, ...rest } = s;
  return rest;
}

const ErrorBody = {
  type: 'object',
  required: ['error'],
  properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', enum: Object.keys(ERROR_CODES) }, message: { type: 'string' }, details: { type: 'object' } } } },
};
/** The job as every response shows it, generated from the contract's schema (libs/shared http-contract.ts). */
const Job = response(PublicJobSchema);
const JobList = response(JobListPageSchema);
const ModelList = response(ModelListSchema);
const Batch = response(PublicBatchSchema);
const BatchResultLine = response(BatchResultLineSchema);
const BatchList = response(BatchListPageSchema);
const batchResponse = (status: string) => ({ [status]: { description: 'the batch', content: { 'application/json': { schema: { $ref: '#/components/schemas/Batch' } } } } });
const Document = response(PublicDocumentSchema);
const DocumentList = response(DocumentListPageSchema);
const Deleted = response(DeletedSchema);
const TenantPurge = response(TenantPurgeSchema);
const ref = (name: string, description: string) => ({ description, content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } } });
const pageParams = [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }, { name: 'after', in: 'query', schema: { type: 'string' } }];
const errors = Object.fromEntries(
  [...new Set(Object.values(ERROR_CODES).map((c) => c.status))].map((status) => [String(status), { description: 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } }]),
);
const jobResponse = (status: string) => ({ [status]: { description: 'the job', content: { 'application/json': { schema: { $ref: '#/components/schemas/Job' } } } } });
const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
const multipart = (options: z.ZodType) => ({
  'multipart/form-data': {
    schema: {
      type: 'object',
      required: ['file'],
      properties: { file: { type: 'string', format: 'binary', description: '.txt, .md, .html, .pdf or .docx' }, ...Object.fromEntries(Object.keys((options as z.ZodObject).shape).map((k) => [k, { type: 'string', description: 'JSON' }])) },
    },
  },
});

/** The OpenAPI document, built from the same zod schemas the API validates requests with. */
export const OPENAPI = {
  openapi: '3.1.0',
  info: { title: 'E2LLM serving API', version: '1.0.0', description: 'Long-document question answering and summaries with E2LLM soft prompts.' },
  paths: {
    '/v1/jobs': {
      post: {
        summary: 'Submit a document and a task',
        parameters: [{ name: 'Idempotency-Key', in: 'header', schema: { type: 'string' } }],
        requestBody: { required: true, content: { 'application/json': { schema: schema(CreateJobJson) }, ...multipart(JobOptions) } },
        responses: { ...jobResponse('202'), ...errors },
      },
      get: {
        summary: 'List jobs, newest first',
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }, { name: 'after', in: 'query', schema: { type: 'string' } }],
        responses: { '200': { description: 'a page of jobs', content: { 'application/json': { schema: { $ref: '#/components/schemas/JobList' } } } }, ...errors },
      },
    },
    '/v1/jobs/{id}': {
      get: { summary: 'Status, progress and result', parameters: [idParam], responses: { ...jobResponse('200'), ...errors } },
      delete: {
        summary: 'Delete a job',
        description: 'Cancels it if it has not ended, then deletes its source, result, records and the soft prompts no other job or document of the tenant references. 404 for an unknown id or another tenant\'s.',
        parameters: [idParam],
        responses: { '200': ref('Deleted', 'deleted'), ...errors },
      },
    },
    '/v1/jobs/{id}/cancel': { post: { summary: 'Cancel a job that has not ended', parameters: [idParam], responses: { ...jobResponse('200'), ...errors } } },
    '/v1/jobs/{id}/events': {
      get: {
        summary: 'Server-sent events: status, progress, text',
        description:
          'A status snapshot (the whole job), then status, progress and text events; the last event is the terminal status with the whole job. Every event has an id: reconnect with Last-Event-ID (or ?lastEventId=) to get the events after it, each once, without a new snapshot.',
        parameters: [
          idParam,
          { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string', pattern: STREAM_EVENT_ID.source }, description: 'resume after this event' },
          { name: 'lastEventId', in: 'query', required: false, schema: { type: 'string', pattern: STREAM_EVENT_ID.source }, description: 'the same, for clients that cannot set headers' },
        ],
        responses: { '200': { description: 'text/event-stream' }, '204': { description: 'resumed after the terminal event: nothing more will come' }, ...errors },
      },
    },
    '/v1/models': { get: { summary: 'The model package this deployment serves', responses: { '200': { description: 'the models', content: { 'application/json': { schema: { $ref: '#/components/schemas/ModelList' } } } }, ...errors } } },
    '/v1/documents': {
      post: {
        summary: 'Store and encode a document once',
        requestBody: { required: true, content: { 'application/json': { schema: schema(CreateDocumentJson) }, ...multipart(CreateDocumentJson.omit({ text: true })) } },
        responses: { '202': ref('Document', 'the document'), ...errors },
      },
      get: { summary: 'List documents, newest first', parameters: pageParams, responses: { '200': ref('DocumentList', 'a page of documents'), ...errors } },
    },
    '/v1/documents/{id}': {
      get: { summary: 'A stored document', parameters: [idParam], responses: { '200': ref('Document', 'the document'), ...errors } },
      delete: {
        summary: 'Delete a document and the jobs asked on it',
        description: 'Deletes its source, chunk references and records, every job asked on it (cancelled first if running), and the soft prompts no other job or document of the tenant references. 404 for an unknown id or another tenant\'s.',
        parameters: [idParam],
        responses: { '200': ref('Deleted', 'deleted'), ...errors },
      },
    },
    '/v1/documents/{id}/jobs': {
      post: { summary: 'Ask a stored document', parameters: [idParam], requestBody: { required: true, content: { 'application/json': { schema: schema(JobOptions) } } }, responses: { ...jobResponse('202'), ...errors } },
    },
    '/admin/tenants/{tenant}/purge': {
      post: {
        summary: 'Delete everything a tenant has stored (admin key)',
        description: 'Every job (running ones cancelled), document, result and soft prompt of the tenant. Needs ADMIN_API_KEY as a Bearer token.',
        parameters: [{ name: 'tenant', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$' } }],
        responses: { '200': ref('TenantPurge', 'what was deleted'), ...errors },
      },
    },
    '/v1/batches': {
      post: {
        summary: 'Submit many tasks over one document',
        parameters: [{ name: 'Idempotency-Key', in: 'header', schema: { type: 'string' }, description: 'the same key and body answer the same batch; another body is 409' }],
        description:
          'The document (text, a stored documentId, or a multipart file) is stored and encoded once; each item is a job on it. Items are JSON (items: [...]) or JSONL (a multipart items field, one item a line). At most BATCH_MAX_ITEMS items, custom_ids unique; a refused item is named by index and custom_id.',
        requestBody: {
          required: true,
          content: {
            'application/json': { schema: schema(CreateBatchJson) },
            'multipart/form-data': {
              schema: {
                type: 'object',
                required: ['items'],
                properties: {
                  file: { type: 'string', format: 'binary', description: 'the document: .txt, .md, .html, .pdf or .docx (or a documentId field)' },
                  items: { type: 'string', description: 'JSONL: one item ({custom_id, task, generation?}) a line' },
                  documentId: { type: 'string' },
                  ...Object.fromEntries(Object.keys(CreateBatchForm.shape).filter((k) => k !== 'items' && k !== 'documentId').map((k) => [k, { type: 'string', description: 'JSON' }])),
                },
              },
            },
          },
        },
        responses: { ...batchResponse('202'), ...errors },
      },
      get: {
        summary: "List the tenant's batches, newest first",
        parameters: [{ name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 100 } }, { name: 'after', in: 'query', schema: { type: 'string' } }],
        responses: { '200': { description: 'a page of batches', content: { 'application/json': { schema: { $ref: '#/components/schemas/BatchList' } } } }, ...errors },
      },
    },
    '/v1/batches/{id}': { get: { summary: 'Status and counts of a batch', parameters: [idParam], responses: { ...batchResponse('200'), ...errors } } },
    '/v1/batches/{id}/results': {
      get: {
        summary: 'Result lines of the items that have ended (JSONL)',
        description: 'One BatchResultLine a line, in the order items ended; the file grows until the batch ends. offset skips the lines a client already has.',
        parameters: [idParam, { name: 'offset', in: 'query', required: false, schema: { type: 'integer', minimum: 0 } }],
        responses: { '200': { description: 'JSONL of BatchResultLine', content: { 'application/jsonl': { schema: { $ref: '#/components/schemas/BatchResultLine' } } } }, ...errors },
      },
    },
    '/v1/batches/{id}/cancel': {
      post: { summary: 'Cancel the items that have not ended (ended items keep their results)', parameters: [idParam], responses: { ...batchResponse('200'), ...errors } },
    },
    '/healthz': { get: { summary: 'Liveness', responses: { '200': { description: 'ok' } } } },
    '/readyz': { get: { summary: 'Readiness: Redis, blob store, model', responses: { '200': { description: 'ready' }, '503': { description: 'not ready' } } } },
  },
  components: { schemas: { Error: ErrorBody, Job, JobList, ModelList, Document, DocumentList, Deleted, TenantPurge, Batch, BatchResultLine, BatchList } },
};

/** Swagger UI's files, served from the npm package: the page fetches nothing from a CDN. */
const SWAGGER_UI = dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
const ASSETS: Record<string, string> = { 'swagger-ui.css': 'text/css; charset=utf-8', 'swagger-ui-bundle.js': 'text/javascript; charset=utf-8' };
const INIT_JS = "window.ui = SwaggerUIBundle({ url: '/docs/openapi.json', dom_id: '#reference', deepLinking: true });\n";
const DOCS_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>E2LLM API reference</title><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="reference"></div><script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/docs/assets/init.js"></script></body>
</html>
`;
/** Scripts and styles from this origin only (Swagger UI sets inline styles on its elements). */
const DOCS_CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

@Controller()
export class DocsController {
  /** The rendered API reference (Swagger UI) over the generated document. */
  @Get('docs')
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Content-Security-Policy', DOCS_CSP)
  @Header('X-Content-Type-Options', 'nosniff')
  docs(): string {
    return DOCS_HTML;
  }

  @Get('docs/openapi.json')
  openapi() {
    return OPENAPI;
  }

  @Get('docs/assets/:name')
  @Header('X-Content-Type-Options', 'nosniff')
  @Header('Cache-Control', 'public, max-age=3600')
  asset(@Param('name') name: string, @Res({ passthrough: true }) res: Response): StreamableFile | string {
    if (name === 'init.js') {
      res.type('text/javascript; charset=utf-8');
      return INIT_JS;
    }
    const type = ASSETS[name];
    if (!type) throw new AppError('NOT_FOUND', `no such asset: ${name}`);
    res.type(type);
    return new StreamableFile(createReadStream(join(SWAGGER_UI, name)));
  }
}
