import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CaliperError, ERROR_CATALOGUE, ExitCode, GrpcStatus, toCaliperError } from '../../src/errors.ts';
import { ParquetJoinError } from '../../src/batch/io/parquet-footer.ts';
import { FeatureStoreError } from '../../src/features/feature-store.ts';
import { DatasetError } from '../../src/optimize/datasets/dataset-error.ts';
import { DistillError } from '../../src/optimize/distill/distill-error.ts';
import { OnnxFormatError } from '../../src/optimize/onnx/model-io.ts';
import { QuantizeError } from '../../src/optimize/quantize/quantize-error.ts';
import { ProtoDecodeError } from '../../src/server/grpc/proto-reader.ts';

const grpcCodes = new Set<number>(Object.values(GrpcStatus));
const exitCodes = new Set<number>(Object.values(ExitCode));

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

describe('the error catalogue (src/errors.ts)', () => {
  it('gives every code an HTTP error status, a gRPC status other than OK and a documented exit code', () => {
    for (const [code, mapping] of Object.entries(ERROR_CATALOGUE)) {
      expect(code).toMatch(/^CALIPER_[A-Z0-9_]+$/);
      expect(mapping.http, code).toBeGreaterThanOrEqual(400);
      expect(mapping.http, code).toBeLessThan(600);
      expect(grpcCodes.has(mapping.grpc) && mapping.grpc !== GrpcStatus.OK, code).toBe(true);
      expect(exitCodes.has(mapping.exit) && mapping.exit !== 0, code).toBe(true);
    }
  });

  it('answers a model that cannot be loaded as a server-side failure (500 / INTERNAL), not a bad request', () => {
    const error = new CaliperError('CALIPER_MODEL_LOAD_FAILED', 'm version 1: ONNX Runtime cannot load m.onnx');
    expect(error.httpStatus).toBe(500);
    expect(error.grpcStatus).toBe(GrpcStatus.INTERNAL);
    expect(error.exitCode).toBe(1);
  });

  it('maps load, time and bugs to distinct exit codes', () => {
    expect(new CaliperError('CALIPER_INVALID_INPUT', 'x').exitCode).toBe(1);
    expect(new CaliperError('CALIPER_REGISTRY_UNAVAILABLE', 'x').exitCode).toBe(69);
    expect(new CaliperError('CALIPER_INTERNAL', 'x').exitCode).toBe(70);
    expect(new CaliperError('CALIPER_QUEUE_FULL', 'x').exitCode).toBe(75);
    expect(toCaliperError(new Error('boom')).exitCode).toBe(70);
  });

  it('folds every area error in: each is a CaliperError carrying a catalogued code', () => {
    const folded: [CaliperError, string, string][] = [
      [new QuantizeError('CALIPER_QUANTIZE_GUARD', 'dropped'), 'QuantizeError', 'CALIPER_QUANTIZE_GUARD'],
      [new DistillError('CALIPER_DISTILL_DATA', 'no data'), 'DistillError', 'CALIPER_DISTILL_DATA'],
      [new DatasetError('unreadable'), 'DatasetError', 'CALIPER_DATASET_INVALID'],
      [new OnnxFormatError('not onnx'), 'OnnxFormatError', 'CALIPER_ONNX_INVALID'],
      [new FeatureStoreError('timeout', 'slow'), 'FeatureStoreError', 'CALIPER_FEATURE_STORE_TIMEOUT'],
      [new FeatureStoreError('error', 'down'), 'FeatureStoreError', 'CALIPER_FEATURE_STORE_UNAVAILABLE'],
      [new ProtoDecodeError('truncated (at byte 3)'), 'ProtoDecodeError', 'CALIPER_PROTO_MALFORMED'],
      [new ParquetJoinError('schemas differ'), 'ParquetJoinError', 'CALIPER_PARQUET_JOIN_REFUSED'],
    ];
    for (const [error, name, code] of folded) {
      expect(error).toBeInstanceOf(CaliperError);
      expect(error.name).toBe(name);
      expect(error.code).toBe(code);
      expect(ERROR_CATALOGUE[error.code]).toBeDefined();
      expect(toCaliperError(error)).toBe(error);
    }
  });

  it('exports no error class from src/ outside the catalogue (the client package keeps its own)', () => {
    const strays: string[] = [];
    for (const file of sources(join(import.meta.dirname, '../../src'))) {
      if (file.includes('/client/') || file.endsWith('/src/errors.ts')) continue;
      for (const match of readFileSync(file, 'utf8').matchAll(/export class (\w+) extends (\w*Error)\b/g)) {
        if (match[2] !== 'CaliperError') strays.push(`${file.split('/src/')[1]}: ${match[1]} extends ${match[2]}`);
      }
    }
    expect(strays).toEqual([]);
  });
});
