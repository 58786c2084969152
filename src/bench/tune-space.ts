import { availableParallelism } from 'node:os';
import type { ModelConfig } from '../config/model-config.ts';
import { CaliperError } from '../errors.ts';

export type InstanceKind = 'worker' | 'in_thread';

/** The serving settings the tuner varies; everything else in model.yaml stays as written. */
export interface TuneSettings {
  maxBatchSize: number;
  maxQueueDelayUs: number;
  instanceCount: number;
  instanceKind: InstanceKind;
  intraOpThreads: number;
}

/** The values each setting may take; candidates are their combinations. */
export interface SearchSpace {
  maxBatchSize: number[];
  maxQueueDelayUs: number[];
  instances: { count: number; kind: InstanceKind }[];
  intraOpThreads: number[];
  /** Candidates whose instances × threads exceed this are skipped (they only oversubscribe the cores). */
  maxThreads: number;
}

/** A point of the space as one index per dimension, in the order of DIMENSIONS. */
export type SpacePoint = [number, number, number, number];
export const DIMENSIONS = ['maxBatchSize', 'maxQueueDelayUs', 'instances', 'intraOpThreads'] as const;

const powersOfTwoUpTo = (n: number): number[] => {
  const out: number[] = [];
  for (let v = 1; v <= n; v *= 2) out.push(v);
  return out;
};

export function defaultSearchSpace(cores = availableParallelism()): SearchSpace {
  const counts = powersOfTwoUpTo(Math.max(1, cores));
  return {
    maxBatchSize: [1, 8, 16, 32, 64],
    maxQueueDelayUs: [0, 100, 500, 2000],
    // In-thread is the fastest single instance for small models (no thread hop); more instances need workers.
    instances: [{ count: 1, kind: 'in_thread' }, ...counts.map((count) => ({ count, kind: 'worker' as const }))],
    intraOpThreads: powersOfTwoUpTo(Math.max(1, cores)),
    maxThreads: Math.max(2, cores),
  };
}

export function settingsAt(space: SearchSpace, point: SpacePoint): TuneSettings {
  const instances = space.instances[point[2]]!;
  return {
    maxBatchSize: space.maxBatchSize[point[0]]!,
    maxQueueDelayUs: space.maxQueueDelayUs[point[1]]!,
    instanceCount: instances.count,
    instanceKind: instances.kind,
    intraOpThreads: space.intraOpThreads[point[3]]!,
  };
}

/** False for points that are not worth measuring: oversubscribed threads, or a queue delay without batching. */
export function isCandidate(space: SearchSpace, point: SpacePoint): boolean {
  const s = settingsAt(space, point);
  if (s.instanceCount * s.intraOpThreads > space.maxThreads) return false;
  if (s.maxBatchSize === 1 && point[1] !== 0) return false;
  return true;
}

export function dimensionSizes(space: SearchSpace): SpacePoint {
  return [space.maxBatchSize.length, space.maxQueueDelayUs.length, space.instances.length, space.intraOpThreads.length];
}

/** Every candidate of the space, in a fixed order. */
export function gridPoints(space: SearchSpace): SpacePoint[] {
  const [a, b, c, d] = dimensionSizes(space);
  const points: SpacePoint[] = [];
  for (let i = 0; i < a; i++)
    for (let j = 0; j < b; j++)
      for (let k = 0; k < c; k++)
        for (let l = 0; l < d; l++) {
          const p: SpacePoint = [i, j, k, l];
          if (isCandidate(space, p)) points.push(p);
        }
  return points;
}

const nearestIndex = (values: readonly number[], target: number): number => {
  let best = 0;
  values.forEach((v, i) => {
    if (Math.abs(v - target) < Math.abs(values[best]! - target)) best = i;
  });
  return best;
};

/**
 * The model's own settings, exactly as model.yaml states them (delay `auto` counts as 500 µs, where the SLA tuner
 * starts). The baseline a tuning result is compared with must be this configuration, not its nearest grid point.
 */
export function currentSettings(config: ModelConfig): TuneSettings {
  const batching = config.batching;
  const batch = batching.enabled ? batching.maxBatchSize : 1;
  return {
    maxBatchSize: batch,
    maxQueueDelayUs: batch === 1 ? 0 : batching.maxQueueDelayUs === 'auto' ? 500 : batching.maxQueueDelayUs,
    instanceCount: config.instances.count,
    instanceKind: config.instances.kind === 'in_thread' ? 'in_thread' : 'worker',
    intraOpThreads: config.instances.intraOpThreads,
  };
}

const withValue = (values: readonly number[], value: number): number[] =>
  [...new Set([...values, value])].sort((a, b) => a - b);

/** The space with the model's current settings added to each dimension, so they are a candidate measured as written. */
export function spaceWithCurrent(space: SearchSpace, config: ModelConfig): SearchSpace {
  const current = currentSettings(config);
  const hasInstances = space.instances.some(
    (i) => i.count === current.instanceCount && i.kind === current.instanceKind,
  );
  return {
    ...space,
    maxBatchSize: withValue(space.maxBatchSize, current.maxBatchSize),
    maxQueueDelayUs: withValue(space.maxQueueDelayUs, current.maxQueueDelayUs),
    intraOpThreads: withValue(space.intraOpThreads, current.intraOpThreads),
    instances: hasInstances
      ? space.instances
      : [...space.instances, { count: current.instanceCount, kind: current.instanceKind }].sort(
          (a, b) => a.count - b.count || (a.kind === 'in_thread' ? -1 : 1),
        ),
    maxThreads: Math.max(space.maxThreads, current.instanceCount * current.intraOpThreads),
  };
}

/** The candidate closest to the model's current settings: where the quick search starts. */
export function pointOfConfig(space: SearchSpace, config: ModelConfig): SpacePoint {
  const batching = config.batching;
  const batch = batching.enabled ? batching.maxBatchSize : 1;
  const delay =
    !batching.enabled || batch === 1 ? 0 : batching.maxQueueDelayUs === 'auto' ? 500 : batching.maxQueueDelayUs;
  let instances = space.instances.findIndex(
    (i) => i.count === config.instances.count && i.kind === config.instances.kind,
  );
  if (instances < 0)
    instances = nearestIndex(
      space.instances.map((i) => i.count),
      config.instances.count,
    );
  const point: SpacePoint = [
    nearestIndex(space.maxBatchSize, batch),
    batch === 1 ? 0 : nearestIndex(space.maxQueueDelayUs, delay),
    instances,
    nearestIndex(space.intraOpThreads, config.instances.intraOpThreads),
  ];
  if (!isCandidate(space, point)) point[3] = 0;
  return point;
}

export const pointKey = (point: SpacePoint): string => point.join(',');

export function describeSettings(s: TuneSettings): string {
  const batching = s.maxBatchSize === 1 ? 'no batching' : `batch ≤${s.maxBatchSize}, delay ${s.maxQueueDelayUs} µs`;
  return `${batching}, ${s.instanceCount} ${s.instanceKind === 'in_thread' ? 'in-thread' : 'worker'} instance${s.instanceCount > 1 ? 's' : ''} × ${s.intraOpThreads} thread${s.intraOpThreads > 1 ? 's' : ''}`;
}

/** Checks a user-given space: every dimension non-empty with valid values. */
export function checkSearchSpace(space: SearchSpace): SearchSpace {
  const fail = (message: string): never => {
    throw new CaliperError('CALIPER_INVALID_INPUT', `search space: ${message}`);
  };
  for (const dim of ['maxBatchSize', 'maxQueueDelayUs', 'intraOpThreads'] as const) {
    if (space[dim].length === 0) fail(`${dim}: at least one value`);
    if (space[dim].some((v) => !Number.isInteger(v) || v < (dim === 'maxQueueDelayUs' ? 0 : 1)))
      fail(`${dim}: whole numbers ${dim === 'maxQueueDelayUs' ? '>= 0' : '>= 1'}, got ${space[dim].join(', ')}`);
  }
  if (space.instances.length === 0) fail('instances: at least one value');
  if (gridPoints(space).length === 0) fail(`no candidate has instances × threads <= ${space.maxThreads}`);
  return space;
}
