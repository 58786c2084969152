import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Structured JSON logs (pino); `level` silent in tests. */
export function createLogger(level: string = process.env.CALIPER_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { service: 'caliper' } });
}
