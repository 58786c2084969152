/** The flags of `npm install <tarball>` shared by the package test and the start-up benchmark. */
export declare const PACKED_INSTALL_FLAGS: readonly string[];
/** process.env without the npm_* variables of an enclosing npm run. */
export declare const cleanEnv: Record<string, string | undefined>;
/** Packs `repo` into `work` and installs the tarball into `work/consumer`; see packed-install.mjs. */
export declare function packAndInstall(
  repo: string,
  work: string,
): { tarball: string; project: string; installed: string; warnings: string[] };
