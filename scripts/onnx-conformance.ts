// Full conformance run: round-trips every libonnx-testdata model and compares ONNX Runtime outputs.
// Usage: npx tsx scripts/onnx-conformance.ts [suite ...]   (default: node simple pytorch-converted pytorch-operator)
import { checkRoundTrip, listConformanceCases } from '../src/optimize/onnx/conformance.ts';

const suites =
  process.argv.length > 2 ? process.argv.slice(2) : ['node', 'simple', 'pytorch-converted', 'pytorch-operator'];
let failures = 0;
for (const suite of suites) {
  const counts = { identical: 0, mismatch: 0, skipped: 0 };
  let bytesDiffer = 0;
  for (const dir of listConformanceCases(suite)) {
    const result = await checkRoundTrip(dir);
    counts[result.status]++;
    if (!result.structurallyIdentical) {
      bytesDiffer++;
      failures++;
      console.log(`STRUCTURE DIFFERS ${dir}: decoding the re-encoded model gives a different ModelProto`);
    }
    if (result.status === 'mismatch') {
      failures++;
      console.log(`MISMATCH ${dir}: ${result.detail}`);
    } else if (result.status === 'skipped' && process.env.VERBOSE) {
      console.log(`skipped ${dir}: ${result.detail}`);
    }
  }
  console.log(
    `${suite}: ${counts.identical} identical, ${counts.mismatch} mismatched, ${counts.skipped} skipped (ONNX Runtime cannot run them); ${bytesDiffer} structurally different after re-encoding`,
  );
}
process.exit(failures === 0 ? 0 : 1);
