import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaliperError } from '../../src/errors.ts';
import { ModelRegistry } from '../../src/registry/model-registry.ts';
import { parseS3Uri } from '../../src/registry/s3-artifact-store.ts';
import { startPrivateS3, useS3rverCredentials, type PrivateS3 } from '../support/private-s3.ts';
import { FRAUD_ONNX, FRAUD_YAML, RegistryFixture } from './registry-fixture.ts';

async function rejection(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return `${(error as CaliperError).code}: ${(error as Error).message}`;
  }
  throw new Error('expected a rejection');
}

describe('artifacts in an S3-compatible store', () => {
  const fixture = new RegistryFixture();
  let s3: PrivateS3;
  let artifacts: string;
  let client: S3Client;
  /** A registry handle as a separate server would have it: same metadata and bucket, its own artifact cache. */
  const handle = (cache: string): Promise<ModelRegistry> =>
    ModelRegistry.connect({ registry: fixture.home, artifacts, artifactCache: join(fixture.dir, cache) });

  beforeAll(async () => {
    useS3rverCredentials();
    s3 = await startPrivateS3(['models']);
    artifacts = s3.uri('models', 'team/registry');
    client = new S3Client({ endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
  });
  afterAll(async () => {
    client?.destroy();
    await s3?.dispose();
    fixture.remove();
  });

  it('parses s3:// URIs with endpoint, region and path style, and names a bad parameter', () => {
    expect(
      parseS3Uri('s3://bucket/a/b/?endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true&region=eu-west-1'),
    ).toEqual({
      bucket: 'bucket',
      prefix: 'a/b',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      region: 'eu-west-1',
    });
    expect(parseS3Uri('s3://bucket')).toEqual({ bucket: 'bucket', prefix: '', forcePathStyle: false });
    expect(() => parseS3Uri('s3://bucket/x?path_style=maybe')).toThrow(/path_style: expected true or false/);
    expect(() => parseS3Uri('s3://bucket/x?endpoint=ftp://x')).toThrow(/endpoint: expected an http/);
  });

  it('uploads a registered version under PREFIX/sha256/, and another server downloads it with its hash checked into its own cache', async () => {
    const writer = await handle('writer-cache');
    const v1 = await writer.register({ file: FRAUD_ONNX, configFile: FRAUD_YAML, name: 'fraud', actor: 'test' });
    await writer.close();
    const object = await client.send(
      new GetObjectCommand({ Bucket: 'models', Key: `team/registry/sha256/${v1.sha256.slice(0, 2)}/${v1.sha256}` }),
    );
    expect(Number(object.ContentLength)).toBe(v1.size);
    await object.Body?.transformToByteArray();

    const reader = await handle('reader-cache');
    const path = await reader.artifactPath(await reader.version('fraud', 1));
    expect(path.startsWith(join(fixture.dir, 'reader-cache'))).toBe(true);
    expect(existsSync(path)).toBe(true);
    await reader.close();
  });

  it('refuses bytes in the bucket that do not hash to the registered sha256, and keeps nothing of them', async () => {
    const writer = await handle('writer-cache');
    const v1 = await writer.version('fraud', 1);
    await writer.close();
    await client.send(
      new PutObjectCommand({
        Bucket: 'models',
        Key: `team/registry/sha256/${v1.sha256.slice(0, 2)}/${v1.sha256}`,
        Body: 'tampered bytes',
      }),
    );
    const fresh = await handle('fresh-cache');
    expect(await rejection(fresh.artifactPath(v1))).toMatch(
      /^CALIPER_ARTIFACT_CORRUPT: models:\/fraud\/1: artifact s3:\/\/models\/team\/registry.* is corrupt \(sha256 [0-9a-f]{64}, registered [0-9a-f]{64}\)/,
    );
    expect(
      readdirSync(join(fixture.dir, 'fresh-cache')).flatMap((d) => readdirSync(join(fixture.dir, 'fresh-cache', d))),
    ).toEqual([]);
    // The server that cached the good bytes keeps using them.
    const reader = await handle('reader-cache');
    expect(existsSync(await reader.artifactPath(v1))).toBe(true);
    await Promise.all([fresh.close(), reader.close()]);
  });

  it('keeps loading cached artifacts while the store is down, and says the store is unavailable for the rest', async () => {
    const reader = await handle('reader-cache');
    const v1 = await reader.version('fraud', 1);
    await s3.stop();
    try {
      expect(existsSync(await reader.artifactPath(v1))).toBe(true);
      const empty = await handle('empty-cache');
      expect(await rejection(empty.artifactPath(v1))).toMatch(
        /^CALIPER_REGISTRY_UNAVAILABLE: artifact store s3:\/\/models\/team\/registry: cannot download /,
      );
      await empty.close();
    } finally {
      await s3.start();
      await reader.close();
    }
  });
});
