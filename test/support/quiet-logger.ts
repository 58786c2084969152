import { pino } from 'pino';
import type { Logger } from '../../src/observability/logger.ts';

/** A logger that writes nothing, for servers started inside tests. */
export const quietLogger = (): Logger => pino({ level: 'silent' });
