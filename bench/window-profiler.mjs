/*
 * A preload (`node --import ./bench/window-profiler.mjs SCRIPT …`) that lets a parent profile any server over the
 * windows it chooses, not its start-up: the parent (which spawned it with an IPC channel) sends
 * `{ profile: 'start' }`, then `{ profile: 'stop', file }`; the V8 CPU profile of the main thread (200 µs sampling)
 * between the two is written to `file`, and each message is answered `{ profiled: 'started' | 'stopped' }`.
 * Until the first 'start' nothing is connected (the server runs as it would without the preload). Plain JavaScript so
 * it needs no loader: bench/profile-gap.ts preloads it into `bin/caliper.js serve` and into bench/echo-server.ts alike.
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { isMainThread } from 'node:worker_threads';

if (isMainThread && typeof process.send === 'function') {
  /** @type {Session | undefined} */
  let session;
  process.on('message', (message) => {
    if (typeof message !== 'object' || message === null || !('profile' in message)) return;
    void (async () => {
      if (message.profile === 'start') {
        if (session === undefined) {
          session = new Session();
          session.connect();
          await session.post('Profiler.enable');
          await session.post('Profiler.setSamplingInterval', { interval: 200 });
        }
        await session.post('Profiler.start');
        process.send?.({ profiled: 'started' });
      } else if (message.profile === 'stop' && session !== undefined) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(String(message.file), JSON.stringify(profile));
        process.send?.({ profiled: 'stopped' });
      }
    })();
  });
  // The IPC channel must not keep a server alive that was told to stop.
  process.channel?.unref();
}
