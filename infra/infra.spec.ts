import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { loadConfig, SETTINGS } from '@lib/shared';

/*
 * Offline validation of the deployment files. Kubernetes objects are checked against the Kubernetes OpenAPI
 * schemas as compiled by `kubernetes-models` (core kinds) and `@kubernetes-models/keda` (KEDA's ScaledObject CRD);
 * the compose file against the compose-spec JSON schema (shipped by `dclint`) with ajv. On top of the schemas:
 * the wiring a schema cannot see (selectors, probes, GPU limits, scaling queries, and every environment variable
 * parsed by the app's own config schema).
 */

const INFRA = fileURLToPath(new URL('.', import.meta.url));
const K8S = join(INFRA, 'k8s');
const require = createRequire(import.meta.url);

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: any;
}

/** Each kind the manifests may use, with the schema validator of its apiVersion. */
const MODELS: Record<string, new (data: any) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

function validateK8s(obj: K8sObject): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no schema for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj).validate();
}

/** The manifests of k8s/ and of its optional k8s/engines/ (the GPU engines, applied on their own). */
function loadManifests(): { file: string; obj: K8sObject }[] {
  const out: { file: string; obj: K8sObject }[] = [];
  const files = [K8S, join(K8S, 'engines')].flatMap((dir) =>
    readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => join(dir, f).slice(K8S.length + 1)),
  );
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(join(K8S, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const obj = doc.toJS() as K8sObject | null;
      if (obj) out.push({ file, obj });
    }
  }
  return out;
}

const manifests = loadManifests();
const byKind = (kind: string) => manifests.filter((m) => m.obj.kind === kind).map((m) => m.obj);
const deployment = (name: string) => byKind('Deployment').find((d) => d.metadata.name === name)!;
const container = (d: K8sObject) => d.spec.template.spec.containers[0];
const configMap = byKind('ConfigMap').find((c) => c.metadata.name === 'e2llm-config')!;
const enginesConfigMap = byKind('ConfigMap').find((c) => c.metadata.name === 'e2llm-engines')!;

/** Placeholders for values that come from Secrets, in the format the config schema expects. */
const SECRET_SAMPLES: Record<string, string> = {
  REDIS_URL: 'redis://:password@redis:6379',
  S3_ACCESS_KEY_ID: 'access-key',
  S3_SECRET_ACCESS_KEY: 'secret-key',
  API_KEYS: 'tenant-a:0123456789abcdef0123',
  WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  ADMIN_API_KEY: '0123456789abcdef0123',
  VLLM_API_KEY: 'vllm-key-0123456789abcdef',
  TEI_API_KEY: 'tei-key-0123456789abcdef',
};

/**
 * A container's environment as the process would see it (ConfigMaps, literal values, Secret placeholders); with
 * `engines: false`, as it is before k8s/engines/ is applied (its ConfigMap is an optional envFrom).
 */
function containerEnv(c: any, { engines = false } = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of c.envFrom ?? []) {
    const cm = byKind('ConfigMap').find((m) => m.metadata.name === from.configMapRef?.name);
    if (!cm) throw new Error(`envFrom names an unknown ConfigMap ${from.configMapRef?.name}`);
    if (cm === enginesConfigMap && !engines) {
      expect(from.configMapRef.optional, 'the engines ConfigMap is optional').toBe(true);
      continue;
    }
    Object.assign(env, cm.data);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.secretKeyRef) env[e.name] = SECRET_SAMPLES[e.valueFrom.secretKeyRef.key] ?? 'x';
    else throw new Error(`env ${e.name} has neither value nor secretKeyRef`);
  }
  return env;
}

const KNOWN_ENV = new Set(Object.values(SETTINGS).map((s) => s.env));

function expectKnownConfig(env: Record<string, string>, where: string): void {
  const unknown = Object.keys(env).filter((k) => !KNOWN_ENV.has(k));
  expect(unknown, `${where}: variables the config schema does not know`).toEqual([]);
  expect(() => loadConfig(env), where).not.toThrow();
}

describe('Kubernetes manifests', () => {
  it.each(manifests.map((m) => [`${m.file}: ${m.obj.kind} ${m.obj.metadata?.name}`, m.obj] as const))('%s matches its schema', (_, obj) => {
    expect(() => validateK8s(obj)).not.toThrow();
    expect(obj.metadata.namespace ?? obj.metadata.name).toBe('e2llm');
  });

  it('the validators reject what the schemas forbid', () => {
    const api = structuredClone(deployment('e2llm-api'));
    api.spec.replicas = 'two';
    expect(() => validateK8s(api)).toThrow(/replicas/);
    const noContainers = structuredClone(deployment('e2llm-api'));
    delete noContainers.spec.template.spec.containers;
    expect(() => validateK8s(noContainers)).toThrow(/containers/);
    const so = structuredClone(byKind('ScaledObject')[0]!);
    delete so.spec.scaleTargetRef;
    expect(() => validateK8s(so)).toThrow(/scaleTargetRef/);
    expect(() => validateK8s({ apiVersion: 'apps/v1beta1', kind: 'Deployment', metadata: { name: 'x' } })).toThrow(/no schema/);
  });

  it('has the three roles, each running its e2llm command with a configuration the app accepts', () => {
    for (const role of ['api', 'encoder-worker', 'decoder-worker']) {
      const d = deployment(`e2llm-${role}`);
      expect(d, role).toBeDefined();
      const labels = d.spec.template.metadata.labels;
      for (const [k, v] of Object.entries(d.spec.selector.matchLabels)) expect(labels[k], `${role} selector`).toBe(v);
      expect(container(d).command).toEqual(['node', 'apps/cli/bin/e2llm.js', role]);
      const env = containerEnv(container(d));
      expect(env).toMatchObject({ BLOB_STORE: 's3', S3_FORCE_PATH_STYLE: 'true' });
      expectKnownConfig(env, role);
    }
    // A non-loopback API refuses to start without API keys.
    expect(containerEnv(container(deployment('e2llm-api')))).toMatchObject({ HOST: '0.0.0.0', API_KEYS: expect.any(String) });
  });

  it('exposes the API through a Service, with readiness on /readyz and liveness on /healthz', () => {
    const api = deployment('e2llm-api');
    const c = container(api);
    const portName = c.ports[0].name;
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: portName });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: portName });
    const svc = byKind('Service').find((s) => s.metadata.name === 'e2llm-api')!;
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(api.spec.template.metadata.labels[k]).toBe(v);
    expect(svc.spec.ports[0].targetPort).toBe(portName);
  });

  it('gives the workers a GPU, the CUDA provider and a grace period longer than their longest job', () => {
    for (const [role, minGrace] of [['encoder-worker', 120], ['decoder-worker', 600]] as const) {
      const d = deployment(`e2llm-${role}`);
      const c = container(d);
      expect(c.resources.limits['nvidia.com/gpu'], role).toBe(1);
      expect(containerEnv(c).EXECUTION_PROVIDERS).toBe('cuda,cpu');
      expect(c.image).toMatch(/cuda/);
      expect(d.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(minGrace);
    }
  });

  it('covers every Deployment with a PodDisruptionBudget', () => {
    const pdbs = byKind('PodDisruptionBudget');
    for (const d of byKind('Deployment')) {
      const covered = pdbs.some((p) => Object.entries(p.spec.selector.matchLabels).every(([k, v]) => d.spec.template.metadata.labels[k] === v));
      expect(covered, d.metadata.name).toBe(true);
    }
  });

  it('scales each worker with KEDA on waiting + active jobs of its queue, down to zero', () => {
    const scaled = byKind('ScaledObject');
    const expected = { 'e2llm-encoder-worker': 'encode', 'e2llm-decoder-worker': 'decode' } as const;
    expect(scaled.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual(Object.keys(expected).sort());
    for (const so of scaled) {
      const queue = expected[so.spec.scaleTargetRef.name as keyof typeof expected];
      expect(deployment(so.spec.scaleTargetRef.name)).toBeDefined();
      expect(so.spec.minReplicaCount).toBe(0);
      expect(so.spec.maxReplicaCount).toBeGreaterThan(0);
      const [trigger] = so.spec.triggers;
      expect(trigger.type).toBe('prometheus');
      const query: string = trigger.metadata.query;
      expect(query).toContain(`e2llm_queue_jobs{queue="${queue}",state=~"waiting|active"}`);
      expect(query).toMatch(/^sum\(max by \(/);
      expect(Number(trigger.metadata.threshold)).toBeGreaterThan(0);
      expect(trigger.metadata.activationThreshold).toBe('0');
    }
  });
});

describe('the GPU engines (k8s/engines/, optional)', () => {
  const vllm = deployment('e2llm-vllm');
  const tei = deployment('e2llm-tei');
  const args = (d: K8sObject): string[] => [...(container(d).command ?? []), ...(container(d).args ?? [])];
  const flag = (d: K8sObject, name: string) => args(d).find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const service = (name: string) => byKind('Service').find((s) => s.metadata.name === name)!;

  it('switch every role to the engines once applied, with a configuration the app accepts', () => {
    for (const role of ['api', 'encoder-worker', 'decoder-worker']) {
      const env = containerEnv(container(deployment(`e2llm-${role}`)), { engines: true });
      expectKnownConfig(env, `${role} with engines`);
      expect(loadConfig(env), role).toMatchObject({ decoderBackend: 'vllm', encoderBackend: 'tei' });
      // Before the engines are applied the same role runs ONNX in-process.
      expect(loadConfig(containerEnv(container(deployment(`e2llm-${role}`)))), role).toMatchObject({ decoderBackend: 'onnx', encoderBackend: 'onnx' });
    }
  });

  it('reach each engine at its Service, with the key the engine requires', () => {
    const env = containerEnv(container(deployment('e2llm-decoder-worker')), { engines: true });
    for (const [url, d] of [[env.DECODER_ENGINE_URL!, vllm], [env.ENCODER_ENGINE_URL!, tei]] as const) {
      const u = new URL(url);
      const svc = service(d.metadata.name);
      expect(u.hostname).toBe(`${svc.metadata.name}.e2llm.svc`);
      expect(String(svc.spec.ports[0].port)).toBe(u.port || '80');
      for (const [k, v] of Object.entries(svc.spec.selector)) expect(d.spec.template.metadata.labels[k]).toBe(v);
    }
    const keyOf = (c: any, name: string) => c.env.find((e: any) => e.name === name)?.valueFrom?.secretKeyRef;
    expect(keyOf(container(vllm), 'VLLM_API_KEY')).toMatchObject({ name: 'e2llm-engine-keys', key: 'VLLM_API_KEY' });
    expect(keyOf(container(tei), 'API_KEY')).toMatchObject({ name: 'e2llm-engine-keys', key: 'TEI_API_KEY' });
    expect(keyOf(container(deployment('e2llm-decoder-worker')), 'DECODER_ENGINE_API_KEY')).toMatchObject({ name: 'e2llm-engine-keys', key: 'VLLM_API_KEY', optional: true });
    for (const w of ['encoder-worker', 'decoder-worker']) {
      expect(keyOf(container(deployment(`e2llm-${w}`)), 'ENCODER_ENGINE_API_KEY')).toMatchObject({ name: 'e2llm-engine-keys', key: 'TEI_API_KEY', optional: true });
    }
  });

  it('run vLLM 0.11.1 or later (CVE-2025-62164) with prompt embeddings and the model name the workers ask for', () => {
    const tag = /:v(\d+)\.(\d+)\.(\d+)$/.exec(container(vllm).image);
    expect(tag, container(vllm).image).not.toBeNull();
    const [maj, min, patch] = tag!.slice(1).map(Number) as [number, number, number];
    expect(maj * 1e6 + min * 1e3 + patch).toBeGreaterThanOrEqual(11_001);
    expect(args(vllm)).toContain('--enable-prompt-embeds');
    // The model's generation_config.json would otherwise set sampling defaults the workers do not send.
    expect(flag(vllm, 'generation-config')).toBe('vllm');
    expect(flag(vllm, 'served-model-name')).toBe(enginesConfigMap.data.DECODER_ENGINE_MODEL);
  });

  it('serve the TEI model and revision the workers store soft prompts under, raw CLS vectors', () => {
    const [model, revision] = enginesConfigMap.data.ENCODER_ENGINE_MODEL_ID.split('@');
    expect(flag(tei, 'model-id')).toBe(model);
    expect(flag(tei, 'revision')).toBe(revision);
    expect(flag(tei, 'pooling')).toBe('cls');
    expect(args(tei)).not.toContain('--auto-truncate');
  });

  it('admit only the workers to the engines and expose them inside the cluster only', () => {
    const policies = byKind('NetworkPolicy');
    for (const [d, clients] of [[vllm, ['e2llm-decoder-worker']], [tei, ['e2llm-encoder-worker', 'e2llm-decoder-worker']]] as const) {
      const svc = service(d.metadata.name);
      expect(svc.spec.type ?? 'ClusterIP').toBe('ClusterIP');
      const policy = policies.find((p) => Object.entries(p.spec.podSelector.matchLabels).every(([k, v]) => d.spec.template.metadata.labels[k] === v))!;
      expect(policy, d.metadata.name).toBeDefined();
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      expect(policy.spec.ingress).toHaveLength(1);
      const from = policy.spec.ingress[0].from.map((f: any) => f.podSelector.matchLabels['app.kubernetes.io/name']).sort();
      expect(from).toEqual([...clients].sort());
      expect(policy.spec.ingress[0].ports.map((p: any) => p.port)).toEqual([svc.spec.ports[0].port]);
    }
  });
});

/**
 * The Compose Specification's JSON schema (draft-07), as the `dclint` package ships it (schemas/compose.schema.json,
 * copied from compose-spec/compose-spec): current enough for top-level `name`, `include` and `models`.
 */
function composeSchema(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dirname(require.resolve('dclint/package.json')), 'schemas', 'compose.schema.json'), 'utf8')) as Record<string, unknown>;
}

describe('docker-compose.yml', () => {
  const source = readFileSync(join(INFRA, 'docker-compose.yml'), 'utf8');
  const interpolate = (env: Record<string, string>) =>
    source.replace(/\$\{([A-Z_]+)(?::?[-?][^}]*)?\}/g, (_, name: string) => env[name] ?? '');
  const compose = parse(interpolate({ API_KEYS: SECRET_SAMPLES.API_KEYS!, WEBHOOK_SECRET: SECRET_SAMPLES.WEBHOOK_SECRET! }), { merge: true }) as any;
  // Formats (durations, URIs) are left to compose itself; the structure is what is checked here. The schema names
  // its draft with https, a spelling ajv does not register: the meta-schema check is skipped, draft-07 is the default.
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
  const validateCompose = ajv.compile(composeSchema());

  it('matches the compose-spec schema', () => {
    const ok = validateCompose(compose);
    expect(validateCompose.errors ?? [], JSON.stringify(validateCompose.errors, null, 1)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('the schema rejects what compose forbids', () => {
    const broken = structuredClone(compose);
    broken.services.api.restart = 5;
    broken.services.api.helthcheck = {};
    expect(validateCompose(broken)).toBe(false);
    expect(JSON.stringify(validateCompose.errors)).toMatch(/helthcheck|additionalProperties/);
  });

  it('runs Redis with AOF persistence and creates the MinIO bucket before the apps start', () => {
    expect(compose.services.redis.command.join(' ')).toContain('--appendonly yes');
    expect(compose.services.redis.volumes[0]).toMatch(/:\/data$/);
    expect(compose.services['minio-init'].command.join(' ')).toContain('mc mb --ignore-existing local/e2llm');
    for (const role of ['api', 'encoder-worker', 'decoder-worker']) {
      expect(compose.services[role].depends_on['minio-init'].condition).toBe('service_completed_successfully');
      expect(compose.services[role].depends_on.redis.condition).toBe('service_healthy');
    }
  });

  it('runs the three roles with a configuration the app accepts', () => {
    for (const role of ['api', 'encoder-worker', 'decoder-worker']) {
      const s = compose.services[role];
      expect(s.command).toEqual(['node', 'apps/cli/bin/e2llm.js', role]);
      const env = Object.fromEntries(Object.entries(s.environment as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      expect(env).toMatchObject({ BLOB_STORE: 's3', S3_ENDPOINT: 'http://minio:9000', S3_FORCE_PATH_STYLE: 'true', REDIS_URL: 'redis://redis:6379' });
      expectKnownConfig(env, role);
    }
    expect(compose.services.api.ports).toEqual(['127.0.0.1:8080:8080']);
  });
});

describe('docker-compose.gpu.yml (the GPU engines over docker-compose.yml)', () => {
  const ENV: Record<string, string> = {
    API_KEYS: SECRET_SAMPLES.API_KEYS!, WEBHOOK_SECRET: SECRET_SAMPLES.WEBHOOK_SECRET!, VLLM_API_KEY: SECRET_SAMPLES.VLLM_API_KEY!, TEI_API_KEY: SECRET_SAMPLES.TEI_API_KEY!,
    E2LLM_PACKAGE: '/srv/e2llm/package', E2LLM_DECODER: '/srv/e2llm/decoder',
  };
  /** Compose's interpolation: ${X}, ${X:-default}, ${X:?error} (an unset X with :? is an error). */
  const interpolate = (source: string, env: Record<string, string>) =>
    source.replace(/\$\{([A-Z_0-9]+)(?:(:?[-?])([^}]*))?\}/g, (_, name: string, op: string | undefined, arg: string) => {
      if (env[name]) return env[name]!;
      if (op?.endsWith('?')) throw new Error(`${name}: ${arg}`);
      return op?.endsWith('-') ? arg : '';
    });
  const read = (f: string) => parse(interpolate(readFileSync(join(INFRA, f), 'utf8'), ENV), { merge: true }) as any;
  const base = read('docker-compose.yml');
  const gpu = read('docker-compose.gpu.yml');
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false, validateSchema: false });
  const validateCompose = ajv.compile(composeSchema());

  it('matches the compose-spec schema and refuses to start without the engine keys', () => {
    expect(validateCompose(gpu), JSON.stringify(validateCompose.errors, null, 1)).toBe(true);
    const source = readFileSync(join(INFRA, 'docker-compose.gpu.yml'), 'utf8');
    expect(() => interpolate(source, { ...ENV, VLLM_API_KEY: '' })).toThrow(/VLLM_API_KEY/);
  });

  it('gives each role, merged over the base file, a configuration the app accepts that uses the engines', () => {
    for (const role of ['api', 'encoder-worker', 'decoder-worker']) {
      const env = Object.fromEntries(Object.entries({ ...base.services[role].environment, ...gpu.services[role].environment }).map(([k, v]) => [k, String(v)]));
      expectKnownConfig(env, role);
      expect(loadConfig(env), role).toMatchObject({ decoderBackend: 'vllm', encoderBackend: 'tei', modelPath: '/models/e2llm', decoderEngineUrl: 'http://vllm:8000', encoderEngineUrl: 'http://tei:80' });
      expect(gpu.services[role].volumes).toContain('/srv/e2llm/package:/models/e2llm:ro');
    }
  });

  it('runs vLLM 0.11.1 or later with prompt embeddings and the workers\' key; the engines publish no ports', () => {
    const vllm = gpu.services.vllm;
    const [maj, min, patch] = /:v(\d+)\.(\d+)\.(\d+)$/.exec(vllm.image)!.slice(1).map(Number) as [number, number, number];
    expect(maj * 1e6 + min * 1e3 + patch).toBeGreaterThanOrEqual(11_001);
    expect(vllm.command).toContain('--enable-prompt-embeds');
    expect(vllm.command).toContain('--served-model-name=e2llm-qwen2.5-7b');
    expect(vllm.environment.VLLM_API_KEY).toBe(gpu.services['decoder-worker'].environment.DECODER_ENGINE_API_KEY);
    expect(gpu.services.tei.environment.API_KEY).toBe(gpu.services['encoder-worker'].environment.ENCODER_ENGINE_API_KEY);
    expect(gpu.services.sglang.command).toContain('--disable-radix-cache');
    for (const engine of ['tei', 'vllm', 'sglang']) expect(gpu.services[engine].ports, engine).toBeUndefined();
  });
});

describe('Dockerfiles', () => {
  const read = (f: string) => readFileSync(join(INFRA, 'docker', f), 'utf8');

  it('builds the CPU image from node:20-bookworm-slim with npm ci and the bundled model', () => {
    const cpu = read('cpu.Dockerfile');
    expect(cpu).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(cpu).toMatch(/npm ci /);
    expect(cpu).toMatch(/^COPY --from=build \/app\/models \.\/models$/m);
    expect(cpu).toMatch(/^ENV [\s\S]*MODEL_PATH=\/app\/models\/e2llm-tiny/m);
  });

  it('builds the CUDA image on nvidia/cuda with the CUDA provider of onnxruntime-node', () => {
    const cuda = read('cuda.Dockerfile');
    expect(cuda).toMatch(/^ARG CUDA_IMAGE=nvidia\/cuda:12\.[\d.]+-cudnn-runtime-/m);
    expect(cuda).toContain('RUN ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install.js');
    expect(cuda).toMatch(/EXECUTION_PROVIDERS=cuda,cpu/);
  });
});
