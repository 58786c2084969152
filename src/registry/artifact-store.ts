import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, createReadStream, existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CaliperError } from '../errors.ts';

/** A file copied into the store under a temporary name, hashed, not yet visible by its hash. */
export interface StagedArtifact {
  sha256: string;
  size: number;
  temporaryPath: string;
}

export async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Where model files are kept, by the sha256 of their bytes: a local folder (the default) or an object
 * store shared by several machines. Whatever the store, a server reads a model from a local file whose
 * hash was checked just before.
 */
export interface ArtifactRepository {
  /** For messages: the folder or the s3:// URI. */
  readonly location: string;
  /** Copies the file in under a temporary name and hashes it: what is checked is exactly what is stored. */
  stage(file: string): Promise<StagedArtifact>;
  /** Makes staged bytes available under their hash (a no-op when those bytes are already stored). */
  commit(staged: StagedArtifact): Promise<void>;
  discard(staged: StagedArtifact): void;
  /** A local file holding the artifact, its sha256 checked; `what` names it in errors. */
  fetch(sha256: string, what: string): Promise<string>;
  /** Whether the store holds bytes with this hash. */
  has(sha256: string): Promise<boolean>;
  remove(sha256: string): Promise<void>;
  /** The local folder the artifact is (or would be) kept in. */
  localDir(sha256: string): string;
}

/**
 * Model files stored by content in a local folder: artifacts/sha256/ab/abcdef…; the same bytes are stored
 * once. A file is copied in first, then hashed and checked, then renamed into place, so a reader never
 * sees half a file. Also the local cache of an object store.
 */
export class ArtifactStore implements ArtifactRepository {
  readonly root: string;
  readonly location: string;

  /** `home` holds artifacts/sha256/…; with `{ root }` the folder itself is the sha256 root. */
  constructor(home: string, options: { root?: boolean } = {}) {
    this.root = options.root ? resolve(home) : join(resolve(home), 'artifacts', 'sha256');
    this.location = this.root;
  }

  pathOf(sha256: string): string {
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  localDir(sha256: string): string {
    return join(this.root, sha256.slice(0, 2));
  }

  /** A fresh temporary name inside the store (same filesystem, so commit is a rename). */
  temporaryPath(): string {
    mkdirSync(this.root, { recursive: true });
    return join(this.root, `.incoming-${process.pid}-${randomBytes(6).toString('hex')}`);
  }

  async stage(file: string): Promise<StagedArtifact> {
    const temporaryPath = this.temporaryPath();
    copyFileSync(file, temporaryPath);
    try {
      return { sha256: await sha256Of(temporaryPath), size: statSync(temporaryPath).size, temporaryPath };
    } catch (error) {
      rmSync(temporaryPath, { force: true });
      throw error;
    }
  }

  /** Moves a staged file to its content address (a no-op when those bytes are already stored). */
  commit(staged: StagedArtifact): Promise<void> {
    this.commitNow(staged);
    return Promise.resolve();
  }

  commitNow(staged: StagedArtifact): string {
    const path = this.pathOf(staged.sha256);
    mkdirSync(this.localDir(staged.sha256), { recursive: true });
    renameSync(staged.temporaryPath, path);
    return path;
  }

  discard(staged: StagedArtifact): void {
    rmSync(staged.temporaryPath, { force: true });
  }

  /** The artifact's path after checking its bytes still hash to `sha256`. */
  async verified(sha256: string, what: string): Promise<string> {
    const path = this.pathOf(sha256);
    if (!existsSync(path))
      throw new CaliperError(
        'CALIPER_ARTIFACT_CORRUPT',
        `${what}: artifact ${path} is missing from the registry store`,
      );
    const actual = await sha256Of(path);
    if (actual !== sha256)
      throw new CaliperError(
        'CALIPER_ARTIFACT_CORRUPT',
        `${what}: artifact ${path} is corrupt (sha256 ${actual}, registered ${sha256})`,
      );
    return path;
  }

  fetch(sha256: string, what: string): Promise<string> {
    return this.verified(sha256, what);
  }

  has(sha256: string): Promise<boolean> {
    return Promise.resolve(existsSync(this.pathOf(sha256)));
  }

  remove(sha256: string): Promise<void> {
    rmSync(this.pathOf(sha256), { force: true });
    return Promise.resolve();
  }
}
