import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { basename, dirname, join } from 'node:path';
import pg from 'pg';
import { freePort } from '../../src/system/free-port.ts';

export interface PrivatePostgres {
  readonly port: number;
  /** postgres://caliper@127.0.0.1:PORT/caliper */
  readonly url: string;
  /** A fresh empty database on this server, as a URI. */
  createDatabase(name: string): Promise<string>;
  /** Stops the server (fast shutdown) and removes its folder. */
  dispose(): Promise<void>;
}

/** Debian's PostgreSQL binaries (the newest installed major version). */
function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(
      'PostgreSQL is not installed (Debian package "postgresql"; test/support/global-setup.ts installs it)',
    );
  return join(root, versions[0]!, 'bin');
}

/**
 * A private PostgreSQL for one test file: a copy of an initdb'd cluster in a temporary folder (trust authentication, user caliper),
 * listening on a free loopback port. PostgreSQL refuses to run as root, so as root it runs as the Debian
 * package's `postgres` user (runuser).
 */
export async function startPrivatePostgres(options: { listen?: string[] } = {}): Promise<PrivatePostgres> {
  const bin = postgresBin();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'caliper-postgres-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const as = (command: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  if (asRoot) {
    const { uid, gid } = userInfoOf('postgres');
    chownSync(dir, uid, gid);
  }
  // initdb once per machine (the slow part), then each server starts from a copy of that cluster.
  execFileSync('cp', ['-a', templateCluster(bin, as, asRoot), data], { stdio: 'ignore' });
  // Test hosts in network namespaces connect from their own addresses (trusted like loopback: nothing else can reach them).
  const extra = options.listen ?? [];
  if (extra.length > 0)
    appendFileSync(
      join(data, 'pg_hba.conf'),
      extra.map((a) => `host all all ${a.replace(/\.\d+$/, '.0')}/24 trust\n`).join(''),
    );
  const [startCommand, startArgs] = as(join(bin, 'pg_ctl'), [
    '-D',
    data,
    '-w',
    '-t',
    '30',
    '-l',
    join(dir, 'log'),
    '-o',
    `-p ${port} -k ${dir} -c listen_addresses=${['127.0.0.1', ...extra].join(',')} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200`,
    'start',
  ]);
  execFileSync(startCommand, startArgs, { stdio: 'ignore' });
  const url = `postgres://caliper@127.0.0.1:${port}/postgres`;
  let stopped = false;
  return {
    port,
    url,
    async createDatabase(name: string): Promise<string> {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${name}`);
      } finally {
        await client.end();
      }
      return `postgres://caliper@127.0.0.1:${port}/${name}`;
    },
    async dispose(): Promise<void> {
      if (stopped) return;
      stopped = true;
      const [stopCommand, stopArgs] = as(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop']);
      await new Promise<void>((resolve) =>
        spawn(stopCommand, stopArgs, { stdio: 'ignore' }).once('exit', () => resolve()),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A freshly initdb'd cluster (user caliper, trust, UTF8, C locale) kept in the temporary folder and copied by each test server. */
function templateCluster(
  bin: string,
  as: (command: string, args: string[]) => [string, string[]],
  asRoot: boolean,
): string {
  const template = join(tmpdir(), `caliper-postgres-template-v1-${basename(dirname(bin))}-${process.getuid?.() ?? 0}`);
  if (existsSync(join(template, 'PG_VERSION'))) return template;
  const building = mkdtempSync(join(tmpdir(), 'caliper-postgres-building-'));
  try {
    if (asRoot) {
      const { uid, gid } = userInfoOf('postgres');
      chownSync(building, uid, gid);
    }
    const [initCommand, initArgs] = as(join(bin, 'initdb'), [
      '-D',
      join(building, 'data'),
      '-U',
      'caliper',
      '-A',
      'trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
    ]);
    execFileSync(initCommand, initArgs, { stdio: 'ignore' });
    try {
      renameSync(join(building, 'data'), template);
    } catch (error) {
      // Another test file finished first: its template is as good.
      if (!existsSync(join(template, 'PG_VERSION'))) throw error;
    }
  } finally {
    rmSync(building, { recursive: true, force: true });
  }
  return template;
}

function userInfoOf(name: string): { uid: number; gid: number } {
  const line = execFileSync('getent', ['passwd', name], { encoding: 'utf8' }).trim();
  const fields = line.split(':');
  if (fields.length < 4) throw new Error(`no user ${name} (${userInfo().username} cannot start PostgreSQL as root)`);
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}
