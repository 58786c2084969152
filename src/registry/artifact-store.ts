import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CaliperError } from '../errors.ts';

/** A file copied into the store under a temporary name, hashed, not yet visible by its hash. */
export interface StagedArtifact { sha256: string; size: number; temporaryPath: string }

export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Model files stored by content: artifacts/sha256/ab/abcdef…; the same bytes are stored once.
 * A file is copied in first, then hashed and checked, then renamed into place: what is checked is
 * exactly what is stored, and a reader never sees half a file.
 */
export class ArtifactStore {
  readonly root: string;

  constructor(home: string) {
    this.root = join(home, 'artifacts', 'sha256');
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  async stage(file: string): Promise<StagedArtifact> {
    mkdirSync(this.root, { recursive: true });
    const temporaryPath = join(this.root, `.incoming-${process.pid}-${randomBytes(6).toString('hex')}`);
    copyFileSync(file, temporaryPath);
    try {
      return { sha256: await sha256Of(temporaryPath), size: statSync(temporaryPath).size, temporaryPath };
    } catch (error) {
      rmSync(temporaryPath, { force: true });
      throw error;
    }
  }

  /** Moves a staged file to its content address (a no-op when those bytes are already stored). */
  commit(staged: StagedArtifact): string {
    const path = this.pathOf(staged.sha256);
    mkdirSync(join(this.root, staged.sha256.slice(0, 2)), { recursive: true });
    renameSync(staged.temporaryPath, path);
    return path;
  }

  discard(staged: StagedArtifact): void {
    rmSync(staged.temporaryPath, { force: true });
  }

  /** The artifact's path after checking its bytes still hash to `sha256`. */
  async verified(sha256: string, what: string): Promise<string> {
    const path = this.pathOf(sha256);
    if (!existsSync(path)) throw new CaliperError('CALIPER_ARTIFACT_CORRUPT', `${what}: artifact ${path} is missing from the registry store`);
    const actual = await sha256Of(path);
    if (actual !== sha256) throw new CaliperError('CALIPER_ARTIFACT_CORRUPT', `${what}: artifact ${path} is corrupt (sha256 ${actual}, registered ${sha256})`);
    return path;
  }

  remove(sha256: string): void {
    rmSync(this.pathOf(sha256), { force: true });
  }
}
