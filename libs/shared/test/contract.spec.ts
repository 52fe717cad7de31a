import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { kvNames, ModelManifest, TaskType, TENSORS } from '../src/model-contract.js';

const readJson = (rel: string): unknown => JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8'));

const VALID = readJson('./fixtures/manifest.valid.json');
const SHIPPED = readJson('../../../models/e2llm-tiny/manifest.json');

// Loose view of the manifest JSON so each variant can break one field.
type Json = Record<string, any>;

/** A deep copy of the valid fixture with one change applied. */
function variant(change: (m: Json) => void): Json {
  const m = structuredClone(VALID) as Json;
  change(m);
  return m;
}

/** Parses, expects failure, and returns the issue paths as 'a.b.c' strings. */
function rejectedAt(manifest: unknown): string[] {
  const result = ModelManifest.safeParse(manifest);
  expect(result.success).toBe(false);
  return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
}

describe('ModelManifest contract', () => {
  it('parses the fixture manifest.valid.json', () => {
    const result = ModelManifest.safeParse(VALID);
    expect(result.error?.issues).toBeUndefined();
    expect(result.success).toBe(true);
  });

  it('parses the shipped models/e2llm-tiny/manifest.json', () => {
    const m = ModelManifest.parse(SHIPPED);
    expect(m.schemaVersion).toBe(1);
    expect(m.adapter.inputWidth).toBe(m.encoder.width);
    expect(m.adapter.outputWidth).toBe(m.decoder.hiddenSize);
    expect(Object.keys(m.prompt.templates).sort()).toEqual([...TaskType.options].sort());
  });

  it('accepts a manifest without the optional golden file', () => {
    expect(ModelManifest.safeParse(variant((m) => delete m.golden)).success).toBe(true);
  });

  it('accepts null clsTokenId and bosTokenId, and a grouped-query layout that divides evenly', () => {
    const ok = variant((m) => {
      m.encoder.clsTokenId = null;
      m.decoder.bosTokenId = null;
      m.decoder.heads = 8;
      m.decoder.kvHeads = 1;
    });
    expect(ModelManifest.safeParse(ok).success).toBe(true);
  });

  describe('rejects a broken manifest', () => {
    it.each(TaskType.options)('missing the %s template', (task) => {
      expect(rejectedAt(variant((m) => delete m.prompt.templates[task]))).toContain(`prompt.templates.${task}`);
    });

    it('a template with the placeholder twice', () => {
      const bad = variant((m) => {
        m.prompt.templates.qa = 'Document:<|context|>\nAgain:<|context|>\nQuestion: {question}\nAnswer:';
      });
      expect(rejectedAt(bad)).toContain('prompt.templates.qa');
    });

    it('a template without the placeholder', () => {
      const bad = variant((m) => {
        m.prompt.templates.summarize = 'Summarize the document.\nSummary:';
      });
      expect(rejectedAt(bad)).toContain('prompt.templates.summarize');
    });

    it('an unknown template task', () => {
      const bad = variant((m) => {
        m.prompt.templates.translate = 'Document:<|context|>\nTranslate:';
      });
      expect(rejectedAt(bad)).toContain('prompt.templates');
    });

    it('an empty placeholder', () => {
      expect(rejectedAt(variant((m) => (m.prompt.placeholder = '')))).toContain('prompt.placeholder');
    });

    it('adapter input width not matching the encoder width', () => {
      expect(rejectedAt(variant((m) => (m.adapter.inputWidth = m.encoder.width + 1)))).toEqual(['adapter.inputWidth']);
      expect(rejectedAt(variant((m) => (m.encoder.width = 64)))).toEqual(['adapter.inputWidth']);
    });

    it('adapter output width not matching the decoder hidden size', () => {
      expect(rejectedAt(variant((m) => (m.adapter.outputWidth = 128)))).toEqual(['adapter.outputWidth']);
    });

    it.each([
      ['rows != vocabSize', [4095, 256]],
      ['cols != hiddenSize', [4096, 128]],
      ['transposed', [256, 4096]],
    ])('embeddings shape wrong: %s', (_what, shape) => {
      expect(rejectedAt(variant((m) => (m.decoder.embeddings.shape = shape)))).toEqual(['decoder.embeddings.shape']);
    });

    it.each([
      ['one dimension', [4096]],
      ['three dimensions', [4096, 256, 1]],
      ['a zero dimension', [0, 256]],
    ])('embeddings shape malformed: %s', (_what, shape) => {
      expect(rejectedAt(variant((m) => (m.decoder.embeddings.shape = shape))).join()).toMatch(/^decoder\.embeddings\.shape/);
    });

    it.each([
      [4, 3],
      [6, 4],
      [4, 8],
    ])('heads %i with kvHeads %i (not a divisor)', (heads, kvHeads) => {
      const bad = variant((m) => {
        m.decoder.heads = heads;
        m.decoder.kvHeads = kvHeads;
      });
      expect(rejectedAt(bad)).toEqual(['decoder.kvHeads']);
    });

    it.each([
      ['encoder.onnx', '../encoder.onnx'],
      ['encoder.onnx', 'sub/../../encoder.onnx'],
      ['encoder.onnx', '..'],
      ['encoder.tokenizer', '/etc/passwd'],
      ['adapter.onnx', '/abs/adapter.onnx'],
      ['decoder.onnx', 'models\\..\\..\\decoder.onnx'],
      ['decoder.tokenizer', ''],
      ['decoder.embeddings.file', '../../secrets.bin'],
      ['golden', '../golden.json'],
    ])('a file path %s = %j climbing out or absolute', (where, path) => {
      const bad = variant((m) => {
        const keys = where.split('.');
        const last = keys.pop()!;
        let target = m;
        for (const k of keys) target = target[k];
        target[last] = path;
      });
      expect(rejectedAt(bad)).toEqual([where]);
    });

    it('accepts a nested relative path (the check is not just "contains a slash")', () => {
      expect(ModelManifest.safeParse(variant((m) => (m.encoder.onnx = 'onnx/./encoder..v2.onnx'))).success).toBe(true);
    });

    it.each([
      [512, 512],
      [512, 600],
      [16, 16],
    ])('chunkChars %i with overlapChars %i (overlap not smaller)', (chunkChars, overlapChars) => {
      const bad = variant((m) => {
        m.prompt.chunking.chunkChars = chunkChars;
        m.prompt.chunking.overlapChars = overlapChars;
      });
      expect(rejectedAt(bad)).toEqual(['prompt.chunking.overlapChars']);
    });

    it('accepts an overlap just below chunkChars', () => {
      expect(ModelManifest.safeParse(variant((m) => (m.prompt.chunking.overlapChars = 511))).success).toBe(true);
    });

    it.each([2, 0, '1'])('schemaVersion %j', (v) => {
      expect(rejectedAt(variant((m) => (m.schemaVersion = v)))).toEqual(['schemaVersion']);
    });

    it.each([
      ['encoder.pooling', 'max'],
      ['adapter.kind', 'linear'],
      ['decoder.dtype', 'bf16'],
      ['decoder.embeddings.dtype', 'i8'],
      ['encoder.maxTokens', 1],
      ['decoder.eosTokenIds', []],
      ['decoder.padTokenId', -1],
      ['decoder.layers', 2.5],
      ['prompt.chunking.chunkChars', 8],
      ['name', ''],
    ])('%s = %j', (where, value) => {
      const bad = variant((m) => {
        const keys = where.split('.');
        const last = keys.pop()!;
        let target = m;
        for (const k of keys) target = target[k];
        target[last] = value;
      });
      expect(rejectedAt(bad)).toEqual([where]);
    });

    it.each(['encoder', 'adapter', 'decoder', 'prompt', 'name', 'version', 'schemaVersion'])('missing %s', (key) => {
      expect(rejectedAt(variant((m) => delete m[key]))).toContain(key);
    });
  });
});

describe('TENSORS', () => {
  it('names the decoder KV inputs and outputs per layer, as Hugging Face exports them', () => {
    expect(kvNames('past_key_values', 2)).toEqual([
      'past_key_values.0.key',
      'past_key_values.0.value',
      'past_key_values.1.key',
      'past_key_values.1.value',
    ]);
    expect(TENSORS.decoder.inputs(1)).toEqual(['inputs_embeds', 'attention_mask', 'position_ids', 'past_key_values.0.key', 'past_key_values.0.value']);
    expect(TENSORS.decoder.outputs(1)).toEqual(['logits', 'present.0.key', 'present.0.value']);
    expect(kvNames('present', 0)).toEqual([]);
  });
});
