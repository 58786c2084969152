/**
 * What `caliper quantize|distill --model DIR|models:/URI` works on: the served model's ONNX file, its
 * request pipeline (data files of request rows become tensors through it), and, after the command,
 * registration of the result as a new version of a registered model.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { formatOfPath } from '../batch/io/batch-format.ts';
import { ModelRegistry, type RegisteredVersion } from '../registry/model-registry.ts';
import type { FeedSet } from './datasets/feed-set.ts';
import { loadRequestData, RequestPipeline } from './datasets/request-data.ts';
import { resolveModelSource, type ModelSource } from './model-source.ts';

/** True when DATA names request rows (.csv, .parquet, .jsonl, or a folder or glob of them) rather than tensors. */
export function isRequestData(path: string): boolean {
  if (path.startsWith('fashion-mnist:')) return false;
  if (formatOfPath(path.replace(/[*?]/g, 'x'))) return true;
  return (
    existsSync(path) && statSync(path).isDirectory() && readdirSync(path).some((f) => formatOfPath(f) !== undefined)
  );
}

export class OptimizationTarget {
  private constructor(
    readonly source: ModelSource,
    readonly pipeline: RequestPipeline,
  ) {}

  static async open(model: string, registry?: string): Promise<OptimizationTarget> {
    const source = await resolveModelSource(model, registry);
    return new OptimizationTarget(source, await RequestPipeline.open(source.config, source.version));
  }

  /**
   * Request-row files go through the model's pipeline (the label column named by `label`); anything else
   * (fashion-mnist:SPLIT, IDX, .pb) is returned as given, to be read as tensors.
   */
  async data(path: string, purpose: string, label: string | undefined, limit?: number): Promise<FeedSet | string> {
    if (!isRequestData(path)) return path;
    return loadRequestData(path, this.pipeline, {
      purpose,
      ...(label ? { label } : {}),
      ...(limit !== undefined ? { limit } : {}),
    });
  }

  close(): Promise<void> {
    return this.pipeline.close();
  }
}

export interface RegisterOptimizedRequest {
  /** The optimized ONNX file, already written. */
  file: string;
  name: string;
  source: ModelSource;
  mode: string;
  metrics: Record<string, number>;
  description?: string;
  registry?: string;
}

/** Registers the optimized model as the next version of NAME, with the source's model.yaml, its report as metrics, and where it came from as tags. */
export async function registerOptimized(request: RegisterOptimizedRequest): Promise<RegisteredVersion> {
  const scratch = mkdtempSync(join(tmpdir(), 'caliper-register-'));
  const registry = await ModelRegistry.connect({ registry: request.registry });
  try {
    // The registry stores model.yaml's text only, so a feature file named relative to the model folder is made absolute.
    const document = parseDocument(request.source.configText);
    const featureSource = document.getIn(['features', 'source']);
    if (typeof featureSource === 'string' && !isAbsolute(featureSource))
      document.setIn(['features', 'source'], resolve(request.source.config.dir, featureSource));
    const configFile = join(scratch, 'model.yaml');
    writeFileSync(configFile, document.toString());
    return await registry.register({
      file: request.file,
      configFile,
      name: request.name,
      description: request.description ?? `${request.mode} of ${request.source.from}`,
      tags: { optimized_from: request.source.from, mode: request.mode },
      metrics: Object.fromEntries(Object.entries(request.metrics).filter(([, v]) => Number.isFinite(v))),
    });
  } finally {
    await registry.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}
