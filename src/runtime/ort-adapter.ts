/*
 * The one place Caliper reaches below onnxruntime-node's public API: its native binding
 * (`onnxruntime-node/dist/binding.js`, not an exported entry point). The package's InferenceSession.run defers each
 * synchronous computation with setImmediate, so a result waits a whole turn of the event loop; the binding's session
 * computes and returns at once. What this module relies on, checked by test/runtime/ort-adapter.test.ts so that an
 * upgrade that changes it fails there, by name, and not somewhere in serving:
 *  - the module exports `binding.InferenceSession` (a constructor) and `initOrt()`;
 *  - a session has `loadModel(path, options)`, `inputMetadata`/`outputMetadata` (`ValueMetadata`: name, isTensor,
 *    type as an ONNXTensorElementDataType code, shape with -1 for a free dimension, symbolicDimensions),
 *    a synchronous `run(feeds, fetches, runOptions)` answering ort.Tensor values, and `dispose()`.
 */
import { createRequire } from 'node:module';
import type ort from 'onnxruntime-node';
import type * as OrtBinding from 'onnxruntime-node/dist/binding.js';
import type { Binding } from 'onnxruntime-node/dist/binding.js';
import { disableOrtTelemetryUnlessAsked } from './ort-telemetry.ts';
import type { ElementType } from './tensor.ts';

// Before the first session creates ORT's environment (library users who call startServing never pass the CLI).
disableOrtTelemetryUnlessAsked();

// Loaded with `require` (CommonJS): an ES import makes Node scan the package's files for export names at every start.
const { binding, initOrt }: typeof OrtBinding = createRequire(import.meta.url)('onnxruntime-node/dist/binding.js');

/** One input or output as the binding describes it. */
export type OrtValueMetadata = Binding.ValueMetadata;

/** Session options the binding takes at load (onnxruntime-common's SessionOptions). */
export type OrtSessionOptions = ort.InferenceSession.SessionOptions;

/** A loaded native session: metadata, a synchronous run, dispose. */
export interface NativeOrtSession {
  readonly inputMetadata: readonly OrtValueMetadata[];
  readonly outputMetadata: readonly OrtValueMetadata[];
  /** Computes in the calling thread; `fetches` names the outputs wanted (value null). Throws ORT's errors. */
  run(
    feeds: Record<string, ort.Tensor>,
    fetches: Record<string, null>,
    options: ort.InferenceSession.RunOptions,
  ): Record<string, ort.Tensor>;
  dispose(): void;
}

/**
 * Loads the ONNX file at `modelPath` into a native session (initialising the ORT environment once per thread).
 * Throws ORT's error when the file is missing or not a model it can load.
 */
export function loadNativeSession(modelPath: string, options: OrtSessionOptions): NativeOrtSession {
  initOrt();
  const session = new binding.InferenceSession();
  session.loadModel(modelPath, options);
  return session as unknown as NativeOrtSession;
}

/** ONNXTensorElementDataType codes (onnxruntime_c_api.h), as the binding reports them in a session's metadata. */
const ELEMENT_TYPES: readonly (ElementType | undefined)[] = [
  undefined,
  'float32',
  'uint8',
  'int8',
  'uint16',
  'int16',
  'int32',
  'int64',
  'string',
  'bool',
  'float16',
  'float64',
  'uint32',
  'uint64',
];

/** The element type of a metadata `type` code, or undefined for one Caliper does not serve (bfloat16, float8, ...). */
export function elementTypeOfCode(code: number): ElementType | undefined {
  return ELEMENT_TYPES[code];
}
