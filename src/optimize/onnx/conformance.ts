import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { decodeModel, decodeTensor, encodeModel, readModelFile, writeModelFile } from './model-io.ts';
import { openSession, ortTensorFromProto, type OrtFeeds, type OrtSession, type OrtTensor } from './ort-session.ts';

/** The libonnx-testdata layout: <root>/<suite>/<case>/model.onnx + test_data_set_N/{input,output}_K.pb. */
export const LIBONNX_TESTDATA = '/usr/share/libonnx-testdata/data';

export interface ConformanceResult {
  caseDir: string;
  status: 'identical' | 'mismatch' | 'skipped';
  /** decode(encode(decode(file))) equals decode(file) field for field (checked for every case, skipped ones too). */
  structurallyIdentical: boolean;
  detail?: string;
}

export function listConformanceCases(suite: string, root = LIBONNX_TESTDATA): string[] {
  const dir = join(root, suite);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .sort()
    .map((name) => join(dir, name))
    .filter((d) => existsSync(join(d, 'model.onnx')));
}

function readDataSets(caseDir: string, inputNames: readonly string[]): OrtFeeds[] {
  const sets: OrtFeeds[] = [];
  for (const entry of readdirSync(caseDir)
    .filter((e) => e.startsWith('test_data_set_'))
    .sort()) {
    const feeds: OrtFeeds = {};
    const files = readdirSync(join(caseDir, entry))
      .filter((f) => f.startsWith('input_'))
      .sort((a, b) => parseInt(a.slice(6), 10) - parseInt(b.slice(6), 10));
    files.forEach((file, i) => {
      const tensor = decodeTensor(readFileSync(join(caseDir, entry, file)));
      const name = inputNames.includes(tensor.name ?? '') ? tensor.name! : inputNames[i]!;
      feeds[name] = ortTensorFromProto(tensor);
    });
    sets.push(feeds);
  }
  return sets;
}

function sameTensor(a: OrtTensor, b: OrtTensor): boolean {
  if (a.type !== b.type || a.dims.join() !== b.dims.join()) return false;
  const x = a.data as ArrayLike<unknown>;
  const y = b.data as ArrayLike<unknown>;
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return false;
  }
  return true;
}

async function runAll(session: OrtSession, sets: OrtFeeds[]): Promise<Record<string, OrtTensor>[]> {
  const results: Record<string, OrtTensor>[] = [];
  for (const feeds of sets) results.push(await session.run(feeds));
  return results;
}

/**
 * Round-trips a test case's model through decode → plain objects → encode (and through an external-data
 * file) and checks that ONNX Runtime gives bit-identical outputs on the case's own inputs before and after.
 * Cases ONNX Runtime itself cannot load or run are skipped with the reason.
 */
export async function checkRoundTrip(caseDir: string): Promise<ConformanceResult> {
  const modelPath = join(caseDir, 'model.onnx');
  const original = readFileSync(modelPath);
  const decoded = decodeModel(original, modelPath);
  const roundTripped = encodeModel(decoded);
  const structurallyIdentical = isDeepStrictEqual(decodeModel(roundTripped), decoded);
  let before: OrtSession;
  try {
    before = await openSession(original, { optimization: 'disabled' });
  } catch (error) {
    return {
      caseDir,
      status: 'skipped',
      structurallyIdentical,
      detail: `ONNX Runtime cannot load the original: ${firstLine(error)}`,
    };
  }
  const work = mkdtempSync(join(tmpdir(), 'caliper-conformance-'));
  try {
    const externalPath = join(work, 'model.onnx');
    writeModelFile(externalPath, decodeModel(roundTripped), { externalData: { thresholdBytes: 16 } });
    const reread = encodeModel(readModelFile(externalPath));
    let sets: OrtFeeds[];
    let expected: Record<string, OrtTensor>[];
    try {
      sets = readDataSets(caseDir, before.inputNames);
      expected = await runAll(before, sets);
    } catch (error) {
      const hint = sequenceOrOptionalInputs(before)
        ? ' (sequence/optional inputs are not supported by onnxruntime-node)'
        : '';
      return {
        caseDir,
        status: 'skipped',
        structurallyIdentical,
        detail: `ONNX Runtime cannot run the original${hint}: ${firstLine(error)}`,
      };
    }
    for (const [label, bytes] of [
      ['round-tripped', roundTripped],
      ['external-data', reread],
    ] as const) {
      const after = await openSession(bytes, { optimization: 'disabled' });
      const actual = await runAll(after, sets);
      for (let s = 0; s < sets.length; s++) {
        for (const name of before.outputNames) {
          if (!actual[s]![name] || !sameTensor(expected[s]![name]!, actual[s]![name]!)) {
            return {
              caseDir,
              status: 'mismatch',
              structurallyIdentical,
              detail: `${label} model: output ${name} differs on data set ${s}`,
            };
          }
        }
      }
      await after.release();
    }
    await before.release();
    return { caseDir, status: 'identical', structurallyIdentical };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function sequenceOrOptionalInputs(session: OrtSession): boolean {
  return session.inputMetadata.some((m) => !m.isTensor);
}

function firstLine(error: unknown): string {
  return String(error instanceof Error ? error.message : error)
    .split('\n')[0]!
    .slice(0, 200);
}
