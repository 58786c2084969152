import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CaliperError } from '../errors.ts';
import { ArtifactStore, type ArtifactRepository } from './artifact-store.ts';
import { registryHome } from './registry-home.ts';

/** Where a registry is: a folder (SQLite, the embedded default) or a PostgreSQL URI. */
export type RegistryLocation = { kind: 'sqlite'; home: string } | { kind: 'postgres'; uri: string };

/** How a command names its registry and artifact store (flags first, then the environment). */
export interface RegistryOptions {
  /** --registry: a folder or postgres://USER@HOST:PORT/DB; else $CALIPER_REGISTRY, $CALIPER_HOME, ~/.caliper. */
  registry?: string;
  /** --artifacts: a folder or s3://BUCKET/PREFIX; else $CALIPER_ARTIFACTS, else the registry folder's artifacts/. */
  artifacts?: string;
  /** Where a server keeps the object store's artifacts it uses; else $CALIPER_ARTIFACT_CACHE, else HOME/artifact-cache. */
  artifactCache?: string;
}

export function isPostgresUri(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value);
}

export function registryLocation(option?: string): RegistryLocation {
  const value = option || process.env.CALIPER_REGISTRY || undefined;
  if (value !== undefined && isPostgresUri(value)) return { kind: 'postgres', uri: value };
  if (value !== undefined && /^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !value.startsWith('file://')) {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--registry: "${value.replace(/:[^:@/]*@/, ':***@')}" is neither a folder nor a postgres:// URI`,
    );
  }
  return { kind: 'sqlite', home: registryHome(value?.startsWith('file://') ? fileURLToPath(value) : value) };
}

/**
 * The artifact store a registry location uses, by URI: s3://… or a folder (default: the registry folder's artifacts/).
 * The AWS SDK is loaded only when an s3:// store is named.
 */
export async function openArtifactStore(
  location: RegistryLocation,
  options: RegistryOptions = {},
): Promise<ArtifactRepository> {
  const value = options.artifacts || process.env.CALIPER_ARTIFACTS || undefined;
  const home = location.kind === 'sqlite' ? location.home : registryHome();
  if (value === undefined) return new ArtifactStore(home);
  if (value.startsWith('s3://')) {
    const cache = options.artifactCache || process.env.CALIPER_ARTIFACT_CACHE || join(home, 'artifact-cache');
    const { S3ArtifactStore } = await import('./s3-artifact-store.ts');
    return S3ArtifactStore.open(value, resolve(cache));
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) && !value.startsWith('file://')) {
    throw new CaliperError('CALIPER_INVALID_INPUT', `--artifacts: "${value}" is neither a folder nor an s3:// URI`);
  }
  const folder = value.startsWith('file://') ? fileURLToPath(value) : value;
  return new ArtifactStore(join(resolve(folder), 'sha256'), { root: true });
}
