import { ensureDebianPackages } from './debian-packages.ts';

/** Everything the suite needs from Debian, installed once before any test file runs. */
export const TEST_DEBIAN_PACKAGES = [
  'redis-server',
  'postgresql',
  'dataset-fashion-mnist',
  'libonnx-testdata',
  'chromium',
] as const;

export default function setup(): void {
  ensureDebianPackages(TEST_DEBIAN_PACKAGES);
}
