import { execFileSync } from 'node:child_process';

/** One "machine" of a multi-host test: an address it listens on and how to run a command there. */
export interface TestHost {
  name: string;
  /** The address this host's servers listen on (reachable from the test process). */
  address: string;
  /** The address of the shared services (database, object store) as this host reaches them. */
  servicesAddress: string;
  /** The argv that runs `command args…` on this host. */
  command(command: string, args: string[]): [string, string[]];
}

export interface TestHosts {
  /** 'netns': two network namespaces joined to this one by veth pairs; 'loopback': two processes on 127.0.0.1. */
  kind: 'netns' | 'loopback';
  /** Why namespaces could not be used, when kind is 'loopback'. */
  why?: string;
  hosts: [TestHost, TestHost];
  /** Addresses the shared services must listen on (besides 127.0.0.1). */
  serviceAddresses: string[];
  dispose(): void;
}

const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

/**
 * Two test "hosts". As root, each is a network namespace with its own host name (UTS namespace), joined
 * to this namespace by a veth pair on a private /30 that only this test creates and uses: the host is
 * .2, this side .1. Elsewhere (not root, no namespaces allowed) both are processes on 127.0.0.1.
 */
export function createTestHosts(label: string): TestHosts {
  const loopback = (why: string): TestHosts => {
    const host = (name: string): TestHost => ({
      name,
      address: '127.0.0.1',
      servicesAddress: '127.0.0.1',
      command: (c, a) => [c, a],
    });
    return {
      kind: 'loopback',
      why,
      hosts: [host(`${label}-a`), host(`${label}-b`)],
      serviceAddresses: [],
      dispose: () => undefined,
    };
  };
  if (process.getuid?.() !== 0) return loopback('network namespaces need root');
  const tag = `${process.pid % 10000}`;
  // 10.231.N.0/29 holds both /30s; N from the pid keeps parallel runs apart.
  const subnet = `10.231.${process.pid % 250}`;
  const created: string[] = [];
  const cleanup = (): void => {
    for (const ns of created.splice(0)) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already gone
      }
    }
  };
  try {
    const hosts = (['a', 'b'] as const).map((side, i): TestHost => {
      const ns = `caliper-${label}-${tag}-${side}`;
      const outside = `clp${tag}${side}0`;
      const inside = `clp${tag}${side}1`;
      const base = i * 4;
      ip('netns', 'add', ns);
      created.push(ns);
      ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside, 'netns', ns);
      ip('addr', 'add', `${subnet}.${base + 1}/30`, 'dev', outside);
      ip('link', 'set', outside, 'up');
      ip('-n', ns, 'addr', 'add', `${subnet}.${base + 2}/30`, 'dev', inside);
      ip('-n', ns, 'link', 'set', inside, 'up');
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      const name = `${label}-${side}`;
      return {
        name,
        address: `${subnet}.${base + 2}`,
        servicesAddress: `${subnet}.${base + 1}`,
        command: (command, args) => [
          'ip',
          [
            'netns',
            'exec',
            ns,
            'unshare',
            '--uts',
            'sh',
            '-c',
            `hostname ${name} && exec "$@"`,
            'sh',
            command,
            ...args,
          ],
        ],
      };
    });
    // A command runs inside the namespace with its own host name, or the test falls back to loopback.
    execFileSync(...hosts[0]!.command('true', []), { stdio: ['ignore', 'ignore', 'pipe'] });
    return {
      kind: 'netns',
      hosts: [hosts[0]!, hosts[1]!],
      serviceAddresses: hosts.map((h) => h.servicesAddress),
      dispose: cleanup,
    };
  } catch (error) {
    cleanup();
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return loopback(`network namespaces are not available here (${stderr || (error as Error).message})`);
  }
}
