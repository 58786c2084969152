import { createReadStream, createWriteStream, existsSync, rmSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { CaliperError } from '../errors.ts';
import { ArtifactStore, sha256Of, type ArtifactRepository, type StagedArtifact } from './artifact-store.ts';

/** s3://BUCKET/PREFIX?endpoint=URL&region=R&path_style=true, parsed. */
export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing slashes ('' for the bucket's root). */
  prefix: string;
  /** An S3-compatible endpoint (MinIO, Ceph…); else the SDK's own (AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, or AWS). */
  endpoint?: string;
  region?: string;
  /** Path-style addressing (http://host/bucket/key), which most self-hosted stores need. */
  forcePathStyle: boolean;
}

const S3_FORM = 's3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&path_style=true]';

export function parseS3Uri(uri: string): S3Location {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new CaliperError('CALIPER_INVALID_INPUT', `--artifacts: "${uri}" is not a URI (expected ${S3_FORM})`);
  }
  if (url.protocol !== 's3:' || !url.hostname)
    throw new CaliperError('CALIPER_INVALID_INPUT', `--artifacts: "${uri}" is not an S3 URI (expected ${S3_FORM})`);
  const known = new Set(['endpoint', 'region', 'path_style']);
  for (const key of url.searchParams.keys()) {
    if (!known.has(key))
      throw new CaliperError(
        'CALIPER_INVALID_INPUT',
        `--artifacts: unknown parameter "${key}" in ${uri} (known: endpoint, region, path_style)`,
      );
  }
  const pathStyle = url.searchParams.get('path_style') ?? process.env.CALIPER_S3_PATH_STYLE;
  if (pathStyle !== null && pathStyle !== undefined && !['true', 'false', '1', '0', ''].includes(pathStyle)) {
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--artifacts: path_style: expected true or false, got "${pathStyle}"`,
    );
  }
  const endpoint = url.searchParams.get('endpoint') ?? undefined;
  if (endpoint !== undefined && !/^https?:\/\//.test(endpoint))
    throw new CaliperError(
      'CALIPER_INVALID_INPUT',
      `--artifacts: endpoint: expected an http:// or https:// URL, got "${endpoint}"`,
    );
  const location: S3Location = {
    bucket: url.hostname,
    prefix: decodeURIComponent(url.pathname).replace(/^\/+|\/+$/g, ''),
    forcePathStyle: pathStyle === 'true' || pathStyle === '1',
  };
  if (endpoint !== undefined) location.endpoint = endpoint;
  const region = url.searchParams.get('region') ?? undefined;
  if (region !== undefined) location.region = region;
  return location;
}

function isMissing(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404;
}

/**
 * Artifacts in an S3-compatible object store, one object per sha256 (PREFIX/sha256/ab/abcdef…), through
 * the AWS SDK v3 client; credentials come from the standard AWS environment. Every artifact a server
 * uses is kept in a local content-addressed cache and its hash checked after each download, so a restart
 * or a store outage does not stop a server from loading what it already had.
 */
export class S3ArtifactStore implements ArtifactRepository {
  readonly location: string;
  private readonly client: S3Client;

  constructor(
    readonly s3: S3Location,
    readonly cache: ArtifactStore,
    uri: string,
  ) {
    this.location = uri.split('?')[0]!;
    this.client = new S3Client({
      ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
      region: s3.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      forcePathStyle: s3.forcePathStyle,
      maxAttempts: 2,
      // Checksums only where S3 demands them: several S3-compatible stores refuse the newer trailing-checksum uploads.
      // Every download is checked against the registered sha256 anyway.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: 3_000, requestTimeout: 60_000 },
    });
  }

  static open(uri: string, cacheDir: string): S3ArtifactStore {
    return new S3ArtifactStore(parseS3Uri(uri), new ArtifactStore(cacheDir, { root: true }), uri);
  }

  keyOf(sha256: string): string {
    const key = `sha256/${sha256.slice(0, 2)}/${sha256}`;
    return this.s3.prefix ? `${this.s3.prefix}/${key}` : key;
  }

  private unavailable(action: string, sha256: string, error: unknown): CaliperError {
    const reason = (error as Error).message || (error as { name?: string }).name || String(error);
    return new CaliperError(
      'CALIPER_REGISTRY_UNAVAILABLE',
      `artifact store ${this.location}: cannot ${action} ${this.keyOf(sha256)} (${reason})`,
      { cause: error },
    );
  }

  localDir(sha256: string): string {
    return this.cache.localDir(sha256);
  }

  stage(file: string): Promise<StagedArtifact> {
    return this.cache.stage(file);
  }

  async has(sha256: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.s3.bucket, Key: this.keyOf(sha256) }));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw this.unavailable('look up', sha256, error);
    }
  }

  /** Uploads the bytes unless the store has them already, then keeps them in the local cache. */
  async commit(staged: StagedArtifact): Promise<void> {
    if (!(await this.has(staged.sha256))) {
      try {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.s3.bucket,
            Key: this.keyOf(staged.sha256),
            Body: createReadStream(staged.temporaryPath),
            ContentLength: staged.size,
            ContentType: 'application/octet-stream',
            Metadata: { sha256: staged.sha256 },
          }),
        );
      } catch (error) {
        throw this.unavailable('upload', staged.sha256, error);
      }
    }
    this.cache.commitNow(staged);
  }

  discard(staged: StagedArtifact): void {
    this.cache.discard(staged);
  }

  /** The cached copy when its hash checks out; otherwise a download, checked before it enters the cache. */
  async fetch(sha256: string, what: string): Promise<string> {
    const cached = this.cache.pathOf(sha256);
    if (existsSync(cached)) {
      if ((await sha256Of(cached)) === sha256) return cached;
      rmSync(cached, { force: true });
    }
    const temporary = this.cache.temporaryPath();
    try {
      let body: unknown;
      try {
        body = (await this.client.send(new GetObjectCommand({ Bucket: this.s3.bucket, Key: this.keyOf(sha256) }))).Body;
      } catch (error) {
        if (isMissing(error))
          throw new CaliperError(
            'CALIPER_ARTIFACT_CORRUPT',
            `${what}: artifact ${this.location}/${this.keyOf(sha256)} is missing from the artifact store`,
          );
        throw this.unavailable('download', sha256, error);
      }
      try {
        await pipeline(body as Readable, createWriteStream(temporary));
      } catch (error) {
        throw this.unavailable('download', sha256, error);
      }
      const actual = await sha256Of(temporary);
      if (actual !== sha256) {
        throw new CaliperError(
          'CALIPER_ARTIFACT_CORRUPT',
          `${what}: artifact ${this.location}/${this.keyOf(sha256)} is corrupt (sha256 ${actual}, registered ${sha256})`,
        );
      }
      this.cache.commitNow({ sha256, size: 0, temporaryPath: temporary });
      return cached;
    } finally {
      rmSync(temporary, { force: true });
    }
  }

  async remove(sha256: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.s3.bucket, Key: this.keyOf(sha256) }));
    } catch (error) {
      if (!isMissing(error)) throw this.unavailable('delete', sha256, error);
    }
    await this.cache.remove(sha256);
  }

  close(): void {
    this.client.destroy();
  }
}
