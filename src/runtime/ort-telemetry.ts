/**
 * ONNX Runtime's own telemetry, off unless the user asks for it.
 *
 * The official onnxruntime-node builds from 1.29 on Linux and macOS collect usage telemetry in every process that
 * creates a session: a device identifier and an SQLite event cache under `$HOME/.cache/Microsoft/DeveloperTools/.onnxruntime`,
 * per-run counters, and an uploader that every few seconds starts threads and looks up
 * `mobile.events.data.microsoft.com`. A server should not call out from inside a private network, and under
 * `caliper serve --workers N` each worker paid the uploader's wake-ups and its share of every run again.
 * ORT reads `ORT_DISABLE_TELEMETRY` once, when its environment is created (the first session of the process), so
 * this must run before any session is loaded. A value the user set (`ORT_DISABLE_TELEMETRY=0` to keep ORT's
 * default) is left as it is.
 */
export const ORT_TELEMETRY_ENV = 'ORT_DISABLE_TELEMETRY';

/** Sets ORT_DISABLE_TELEMETRY=1 in this process's environment unless it is already set (to anything). */
export function disableOrtTelemetryUnlessAsked(): void {
  if (process.env[ORT_TELEMETRY_ENV] === undefined) process.env[ORT_TELEMETRY_ENV] = '1';
}
