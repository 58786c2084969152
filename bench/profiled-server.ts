/*
 * A Caliper server whose CPU profile covers only what the parent asks for (the load window, not start-up):
 * the parent sends 'start' and 'stop' over IPC; on 'stop' the V8 profile is written to FILE and the parent
 * gets {cpuUs, wallMs} (this process's CPU time over the window, all threads).
 * Usage (as an IPC child): node --import tsx bench/profiled-server.ts PORT FILE MODEL_DIR...
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createLogger } from '../src/observability/logger.ts';
import { startServing } from '../src/server/serving.ts';

const [portArg, file, ...paths] = process.argv.slice(2);
const server = await startServing({ paths, port: Number(portArg), logger: createLogger('warn') });
const session = new Session();
session.connect();
let cpuAtStart = process.cpuUsage();
let wallAtStart = performance.now();

process.on('message', (message: unknown) => {
  void (async () => {
    if (message === 'start') {
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: 200 });
      await session.post('Profiler.start');
      cpuAtStart = process.cpuUsage();
      wallAtStart = performance.now();
      process.send?.({ started: true });
    } else if (message === 'stop') {
      const cpu = process.cpuUsage(cpuAtStart);
      const wallMs = performance.now() - wallAtStart;
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(file!, JSON.stringify(profile));
      process.send?.({ cpuUs: cpu.user + cpu.system, wallMs });
    } else if (message === 'exit') {
      await server.close();
      process.exit(0);
    }
  })();
});
process.send?.({ ready: server.url });
