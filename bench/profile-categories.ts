/*
 * A V8 .cpuprofile's busy samples sorted into the categories of a request's way through a server (bench/profile-gap.ts
 * compares the floor's bare route with Caliper category by category). Every sampled node gets one category from its
 * script: node's own JavaScript, a package, or a Caliper folder/file. A native node (no script: a C++ binding such as
 * writev, or ONNX Runtime's run) takes the category of the nearest JavaScript frame above it, except that native code
 * called from node's own JavaScript is "native (syscalls, bindings)" and native code called from the runtime's
 * JavaScript is "ORT native run". `(idle)` samples are left out; `(program)` (V8 itself, outside any function) and
 * `(garbage collector)` are their own categories.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  hitCount?: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}

/** The categories, in the order a report lists them. */
export const CATEGORIES = [
  'node HTTP (_http_*: parser, headers, response)',
  'node net/streams',
  'node event loop (events, timers, task queues)',
  'native (syscalls, bindings)',
  'body parse (secure-json-parse)',
  'fastify core (+ serializer, router)',
  'route handler (src/server/routes; floor: bench/echo-server.ts)',
  'server hooks (src/server: admission, auth, observer)',
  'pipeline (src/pipeline: stage list, admission, inference stage)',
  'validation (request schema, tensor checks)',
  'preprocess/postprocess',
  'scheduler (src/scheduler)',
  'runtime/ORT JS (src/runtime, onnxruntime-node)',
  'ORT native run',
  'observability (metrics, stats, Server-Timing, logging)',
  'other Caliper (cache, lifecycle, config, errors)',
  'other packages',
  'GC',
  '(program)',
] as const;
export type Category = (typeof CATEGORIES)[number];

const FASTIFY_PACKAGES = new Set([
  'fastify',
  'find-my-way',
  'avvio',
  'light-my-request',
  'fast-json-stringify',
  'fast-querystring',
  'fast-decode-uri-component',
  'fastq',
  'process-warning',
  'abstract-logging',
  'rfdc',
  'toad-cache',
  'fast-content-type-parse',
  'ret',
  'safe-regex2',
  'fast-uri',
  'json-schema-ref-resolver',
  'reusify',
  'proxy-addr',
  'forwarded',
  'ipaddr.js',
  '@fastify/error',
  '@fastify/fast-json-stringify-compiler',
  '@fastify/ajv-compiler',
  '@fastify/merge-json-schemas',
  '@fastify/proxy-addr',
  '@fastify/forwarded',
]);
const OBSERVABILITY_PACKAGES = new Set(['pino', 'pino-std-serializers', 'sonic-boom', 'thread-stream', 'prom-client']);

/** The category of a JavaScript frame from its script's URL (a file: URL, `node:…`, or a path). */
export function categoryOfScript(url: string, functionName: string): Category {
  if (url.startsWith('node:_http') || url === 'node:http') return 'node HTTP (_http_*: parser, headers, response)';
  if (/^node:(net|stream|internal\/streams\/|internal\/stream_base_commons)/.test(url)) return 'node net/streams';
  if (url.startsWith('node:')) return 'node event loop (events, timers, task queues)';
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(url)?.[1];
  if (pkg !== undefined) {
    if (pkg === 'secure-json-parse') return 'body parse (secure-json-parse)';
    if (pkg === 'onnxruntime-node' || pkg === 'onnxruntime-common')
      return 'runtime/ORT JS (src/runtime, onnxruntime-node)';
    if (pkg === 'denque') return 'scheduler (src/scheduler)';
    if (pkg === 'ajv' || pkg === 'ajv-formats') return 'validation (request schema, tensor checks)';
    if (FASTIFY_PACKAGES.has(pkg) || pkg.startsWith('@fastify/')) return 'fastify core (+ serializer, router)';
    if (OBSERVABILITY_PACKAGES.has(pkg) || pkg.startsWith('@opentelemetry/'))
      return 'observability (metrics, stats, Server-Timing, logging)';
    return 'other packages';
  }
  if (url.endsWith('/bench/echo-server.ts')) return 'route handler (src/server/routes; floor: bench/echo-server.ts)';
  const src = /\/src\/(.+)$/.exec(url)?.[1];
  if (src === undefined)
    return url === '' && /^validate\d*$/.test(functionName)
      ? 'validation (request schema, tensor checks)' // an Ajv-compiled validator (new Function: no script)
      : 'other packages';
  if (src.startsWith('server/routes/')) return 'route handler (src/server/routes; floor: bench/echo-server.ts)';
  if (src.startsWith('server/')) return 'server hooks (src/server: admission, auth, observer)';
  if (/^pipeline\/(request-schema|tensor-check|signature-check)\.ts/.test(src))
    return 'validation (request schema, tensor checks)';
  if (/^pipeline\/(preprocess|postprocess|model-hooks)\.ts/.test(src)) return 'preprocess/postprocess';
  if (src.startsWith('pipeline/stage-timings')) return 'observability (metrics, stats, Server-Timing, logging)';
  if (src.startsWith('pipeline/')) return 'pipeline (src/pipeline: stage list, admission, inference stage)';
  if (src.startsWith('scheduler/')) return 'scheduler (src/scheduler)';
  if (src.startsWith('runtime/')) return 'runtime/ORT JS (src/runtime, onnxruntime-node)';
  if (src.startsWith('observability/')) return 'observability (metrics, stats, Server-Timing, logging)';
  return 'other Caliper (cache, lifecycle, config, errors)';
}

/** Busy samples of one profile by category, and the heaviest functions of each (self samples). */
export interface CategorySamples {
  /** Samples that were not `(idle)`. */
  busy: number;
  samples: Record<Category, number>;
  /** Per category, function → samples (`name file:line`), for reading what a category holds. */
  functions: Record<Category, Record<string, number>>;
}

/** An empty tally (every category at 0), to add profiles into. */
export function emptySamples(): CategorySamples {
  const samples = {} as Record<Category, number>;
  const functions = {} as Record<Category, Record<string, number>>;
  for (const c of CATEGORIES) {
    samples[c] = 0;
    functions[c] = {};
  }
  return { busy: 0, samples, functions };
}

/** Adds the busy samples of the .cpuprofile at `file` into `into` (see the file's head for the rules). */
export function addProfile(file: string, into: CategorySamples): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[] };
  const parent = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parent.set(child, node);
  }
  const categoryOf = (node: ProfileNode): Category => {
    const { functionName, url } = node.callFrame;
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(program)' || functionName === '(root)') return '(program)';
    if (url !== '' || /^validate\d*$/.test(functionName)) return categoryOfScript(url, functionName);
    // fast-json-stringify's compiled serializers (new Function: no script) are fastify's answer writing.
    if (/^anonymous\d*$/.test(functionName)) return 'fastify core (+ serializer, router)';
    // Native: the nearest JavaScript frame above decides.
    for (let up = parent.get(node.id); up !== undefined; up = parent.get(up.id)) {
      if (up.callFrame.url === '') continue;
      const above = categoryOfScript(up.callFrame.url, up.callFrame.functionName);
      if (above.startsWith('node ')) return 'native (syscalls, bindings)';
      if (above === 'runtime/ORT JS (src/runtime, onnxruntime-node)') return 'ORT native run';
      return above;
    }
    return 'native (syscalls, bindings)';
  };
  for (const node of profile.nodes) {
    const n = node.hitCount ?? 0;
    if (n === 0 || node.callFrame.functionName === '(idle)') continue;
    const category = categoryOf(node);
    into.busy += n;
    into.samples[category] += n;
    const where = node.callFrame.url.replace(/^.*\/(node_modules\/|src\/|bench\/)/, '$1');
    const key = `${node.callFrame.functionName || '(anonymous)'} ${where}:${node.callFrame.lineNumber + 1}`;
    const fns = into.functions[category];
    fns[key] = (fns[key] ?? 0) + n;
  }
}
