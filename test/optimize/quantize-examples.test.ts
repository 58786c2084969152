import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CATEGORIES, features, syntheticTransactions } from '../../examples/fraud-detector/train.ts';
import { readModelFile } from '../../src/optimize/onnx/model-io.ts';
import type { ModelProto } from '../../src/optimize/onnx/onnx-types.ts';
import { quantize, type QuantizeMode } from '../../src/optimize/quantize/quantizer.ts';

const PYTORCH = '/usr/share/libonnx-testdata/data';

/** Fraud feature vectors (as model.yaml's preprocess builds them) with their labels, as a CSV data set. */
function fraudFeaturesCsv(dir: string): string {
  const { transactions, labels } = syntheticTransactions(300, 99);
  const header = ['log_amount', 'log_seconds', ...CATEGORIES, 'label'].join(',');
  const row = new Float32Array(10);
  const lines = transactions.map((t, i) => {
    features(t, row, 0);
    return [...row, labels[i]].join(',');
  });
  const path = join(dir, 'fraud-features.csv');
  writeFileSync(path, `${header}\n${lines.join('\n')}\n`);
  return path;
}

/**
 * PyTorch's nn.Linear as Debian ships it (Gemm-6, which ONNX Runtime 1.30 no longer runs), stated at opset 13
 * as a current torch.onnx.export writes it: the same graph without Gemm-6's legacy `broadcast` attribute.
 */
function pytorchLinearAtOpset13(): ModelProto {
  const model = readModelFile(`${PYTORCH}/pytorch-converted/test_Linear/model.onnx`);
  model.opsetImport = [{ domain: '', version: 13 }];
  model.irVersion = 8;
  for (const node of model.graph?.node ?? [])
    node.attribute = (node.attribute ?? []).filter((a) => a.name !== 'broadcast');
  return model;
}

const MODES: QuantizeMode[] = ['dynamic', 'static', 'fp16'];

/** Every mode on the shipped examples and on a PyTorch-exported model, checked in ONNX Runtime by quantize itself. */
describe('quantize on the examples and on a PyTorch export', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'caliper-quantize-examples-'));
  const fraudData = fraudFeaturesCsv(scratch);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  for (const mode of MODES) {
    it(`${mode}: the fashion-mnist example keeps its accuracy`, async () => {
      const { report } = await quantize('examples/fashion-mnist/1/model.onnx', {
        mode,
        ...(mode === 'static' ? { calibration: 'fashion-mnist:train', calibrationSamples: 128 } : {}),
        eval: 'fashion-mnist:t10k',
        evalSamples: 1000,
        latencyBatchSizes: [],
      });
      expect(report.size.ratio).toBeLessThan(mode === 'fp16' ? 0.55 : 0.3);
      expect(report.accuracy).toBeDefined();
      expect(report.accuracy!.after).toBeGreaterThan(report.accuracy!.before - 0.01);
      expect(report.accuracy!.agreement).toBeGreaterThan(0.98);
    });

    it(`${mode}: the fraud-detector example answers within tolerance`, async () => {
      const { report } = await quantize('examples/fraud-detector/1/model.onnx', {
        mode,
        ...(mode === 'static' ? { calibration: fraudData } : {}),
        eval: fraudData,
        latencyBatchSizes: [],
      });
      // a probability from a 10-16-1 network: int8 rounding moves it by a few hundredths at most
      expect(report.outputDifference.maxAbs).toBeLessThan(mode === 'fp16' ? 1e-2 : 0.1);
    });

    it(`${mode}: a PyTorch-exported Linear layer converts and answers within tolerance`, async () => {
      const dir = `${PYTORCH}/pytorch-converted/test_Linear/test_data_set_0`;
      const { report } = await quantize(pytorchLinearAtOpset13(), {
        mode,
        ...(mode === 'static' ? { calibration: dir } : {}),
        eval: dir,
        latencyBatchSizes: [],
      });
      expect(report.convertedNodes).toBeGreaterThan(0);
      expect(report.outputDifference.maxAbs).toBeLessThan(mode === 'fp16' ? 1e-2 : 0.1);
    });

    it(`${mode}: a PyTorch-exported convolution (libonnx-testdata pytorch-operator) converts and runs`, async () => {
      const dir = `${PYTORCH}/pytorch-operator/test_operator_conv`;
      if (mode === 'dynamic') {
        // dynamic INT8 covers MatMul and Gemm; a model without them is refused with the reason, never written half-done
        await expect(quantize(`${dir}/model.onnx`, { mode, latencyBatchSizes: [] })).rejects.toThrow(
          /nothing to convert: dynamic mode needs MatMul or Gemm/,
        );
        return;
      }
      const { report } = await quantize(`${dir}/model.onnx`, {
        mode,
        ...(mode === 'static' ? { calibration: `${dir}/test_data_set_0` } : {}),
        eval: `${dir}/test_data_set_0`,
        latencyBatchSizes: [],
      });
      expect(report.convertedNodes).toBeGreaterThan(0);
      expect(report.outputDifference.maxAbs).toBeLessThan(mode === 'fp16' ? 5e-2 : 0.5);
    });
  }
});
