import { boundedMessage, toCaliperError } from '../errors.ts';
import type { Logger } from '../observability/logger.ts';
import { thisServer, type ModelRegistry, type RegisteredVersion } from '../registry/model-registry.ts';
import { formatModelUri, formatSelector, type VersionSelector } from '../registry/model-uri.ts';
import type { ModelRepository } from './model-repository.ts';
import { ModelVersion, type SchedulerFactory } from './model-version.ts';
import { emptyShadowStats, type TrafficPolicy } from './traffic-policy.ts';

/** A registered model a server follows: the selector says which version answers ("Production", "@champion", 3). */
export interface FollowTarget {
  name: string;
  selector: VersionSelector;
}

export type FollowState = 'loading' | 'ready' | 'failed' | 'unavailable';

/** What the follower knows about one model, for /v2/repository/index and logs. */
export interface FollowStatus {
  name: string;
  /** The URI followed, e.g. models:/fraud_detector/Production. */
  target: string;
  state: FollowState;
  servedVersion?: number;
  /** When this server began answering with servedVersion. */
  since?: string;
  /** Why the wanted version is not served (a failed load, a missing stage...). */
  reason?: string;
  failedVersion?: number;
  canary?: { version: number; weight: number };
  shadow?: { version: number; fraction: number };
  swaps: number;
  loadFailures: number;
}

export interface FollowerOptions {
  /** Explicit URIs to serve; with none and followAll, every model with a Production version or an alias. */
  targets: FollowTarget[];
  followAll: boolean;
  /**
   * How often to look for registry changes (ms; default 250). With PostgreSQL, LISTEN/NOTIFY says so at
   * once and polling is the fallback for a lost notification connection.
   */
  pollMs?: number;
  /** Record which version this server serves in the registry (host, pid, since); default true. */
  recordReplicas?: boolean;
  schedulerFactory?: SchedulerFactory;
  logger: Logger;
}

/** With --registry: Production if the model has one, else @champion, else its first alias. */
async function automaticSelector(registry: ModelRegistry, name: string): Promise<VersionSelector | undefined> {
  const model = await registry.model(name);
  if (model.stages.Production?.length) return { kind: 'stage', stage: 'Production' };
  const aliases = Object.keys(model.aliases);
  if (aliases.includes('champion')) return { kind: 'alias', alias: 'champion' };
  return aliases.length > 0 ? { kind: 'alias', alias: aliases[0]! } : undefined;
}

/**
 * Keeps the served versions in step with the registry. On a change it loads and warms the newly wanted
 * versions, switches the model over in one step, then drains and frees what is no longer wanted.
 * A version that fails to load or warm is logged, counted and shown in the status; the old one keeps serving.
 */
export class RegistryFollower {
  private readonly explicit = new Map<string, VersionSelector>();
  private readonly unfollowed = new Set<string>();
  private readonly statuses = new Map<string, FollowStatus>();
  private lastStamp = '';
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  private stopWatching: (() => Promise<void>) | undefined;
  private watchRetry: NodeJS.Timeout | undefined;
  /** What was last written to the registry's replicas table per model, so unchanged rows are not rewritten. */
  private readonly recorded = new Map<string, string>();
  private readonly server = thisServer();
  /** Load events already written to the registry's history by this process (event:model:version). */
  private readonly loadEvents = new Set<string>();
  /** Set during the first sync: a model whose wanted version does not load serves the newest of its lineage that does. */
  private fallingBack = false;
  /** Whether notifications from the registry (PostgreSQL LISTEN) are arriving; polling covers the rest. */
  listening = false;
  /** Set while the registry cannot be read or notifications are down, so each outage is logged once, not per poll. */
  private unreadable = false;
  private watchFailing = false;
  private syncing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(
    readonly registry: ModelRegistry,
    private readonly repository: ModelRepository,
    private readonly options: FollowerOptions,
  ) {
    for (const target of options.targets) this.explicit.set(target.name, target.selector);
  }

  /** First sync, then LISTEN where the registry can push, and polling. */
  async start(): Promise<void> {
    // Only the first sync falls back (a restart); a later load of a target that does not load is refused.
    this.fallingBack = true;
    try {
      await this.sync();
    } finally {
      this.fallingBack = false;
    }
    await this.watch();
    const pollMs = this.options.pollMs ?? 250;
    this.timer = setInterval(() => void this.poll(), pollMs);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    if (this.polling || this.closed) return;
    this.polling = true;
    try {
      if ((await this.registry.changeStamp()) !== this.lastStamp) await this.sync();
    } catch (error) {
      this.registryUnreadable(error);
    } finally {
      this.polling = false;
    }
  }

  private registryUnreadable(error: unknown): void {
    if (this.unreadable) return;
    this.unreadable = true;
    this.options.logger.warn(
      { err: error },
      `registry ${this.registry.location} cannot be read (${(error as Error).message}); served versions keep answering`,
    );
  }

  /** Subscribes to the registry's change notifications; when the connection is lost, polling carries on and a new one is tried. */
  private async watch(): Promise<void> {
    const watch = this.registry.database.watch?.bind(this.registry.database);
    if (!watch || this.closed) return;
    try {
      this.stopWatching = await watch(
        () => void this.sync(),
        (error) => {
          this.listening = false;
          this.watchFailing = true;
          this.options.logger.warn(
            { err: error },
            `registry notifications stopped (${error.message}); polling every ${this.options.pollMs ?? 250} ms until they are back`,
          );
          this.retryWatch();
        },
      );
      this.listening = true;
      if (this.watchFailing) this.options.logger.info('registry notifications are back');
      this.watchFailing = false;
      // A change committed while no connection listened is picked up now.
      void this.poll();
    } catch (error) {
      if (!this.watchFailing)
        this.options.logger.warn(
          { err: error },
          `registry notifications unavailable (${(error as Error).message}); polling`,
        );
      this.watchFailing = true;
      this.retryWatch();
    }
  }

  private retryWatch(): void {
    if (this.closed || this.watchRetry) return;
    this.watchRetry = setTimeout(() => {
      this.watchRetry = undefined;
      void this.watch();
    }, 2_000);
    this.watchRetry.unref();
  }

  status(): FollowStatus[] {
    return [...this.statuses.values()];
  }

  statusOf(name: string): FollowStatus | undefined {
    return this.statuses.get(name);
  }

  follows(name: string): boolean {
    return this.statuses.has(name) || this.explicit.has(name);
  }

  /** Starts (or changes) following a model, then syncs it. */
  async follow(name: string, selector?: VersionSelector): Promise<FollowStatus | undefined> {
    const wasUnfollowed = this.unfollowed.delete(name);
    const previous = this.explicit.get(name);
    if (selector) this.explicit.set(name, selector);
    else if (!this.options.followAll && !this.explicit.has(name))
      this.explicit.set(name, { kind: 'stage', stage: 'Production' });
    await this.sync();
    const status = this.statuses.get(name);
    if (!this.repository.has(name) && status && status.state !== 'ready') {
      // A target that cannot be served is not remembered: the next plain load uses the earlier one.
      if (previous) this.explicit.set(name, previous);
      else this.explicit.delete(name);
      if (wasUnfollowed) this.unfollowed.add(name);
      this.statuses.delete(name);
      return status;
    }
    return status;
  }

  /** Stops following a model and unloads it. */
  async unfollow(name: string): Promise<void> {
    this.unfollowed.add(name);
    await this.sync();
  }

  /** Reconciles every followed model with the registry; calls are queued, never run side by side. */
  sync(): Promise<void> {
    const run = this.syncing.then(() => this.syncAll());
    this.syncing = run.catch(() => undefined);
    return run;
  }

  private async wantedTargets(): Promise<Map<string, VersionSelector | undefined>> {
    const wanted = new Map<string, VersionSelector | undefined>();
    for (const [name, selector] of this.explicit) wanted.set(name, selector);
    if (this.options.followAll) {
      for (const model of await this.registry.listModels()) {
        if (!wanted.has(model.name)) wanted.set(model.name, await automaticSelector(this.registry, model.name));
      }
    }
    for (const name of this.statuses.keys()) if (!wanted.has(name)) wanted.set(name, undefined);
    for (const name of this.unfollowed) wanted.delete(name);
    return wanted;
  }

  private async syncAll(): Promise<void> {
    if (this.closed) return;
    let wanted: Map<string, VersionSelector | undefined>;
    try {
      this.lastStamp = await this.registry.changeStamp();
      wanted = await this.wantedTargets();
    } catch (error) {
      // The registry cannot be read (database down): what is served keeps answering, the next poll tries again.
      this.lastStamp = '';
      this.registryUnreadable(error);
      return;
    }
    if (this.unreadable) {
      this.unreadable = false;
      this.options.logger.info(`registry ${this.registry.location} can be read again`);
    }
    for (const name of this.unfollowed) {
      if (this.statuses.has(name)) {
        this.statuses.delete(name);
        if (this.repository.has(name)) await this.repository.unloadModel(name);
        this.options.logger.info({ model: name }, `model ${name} unloaded`);
        await this.forgetReplica(name);
      }
    }
    for (const [name, selector] of wanted) {
      try {
        await this.syncModel(name, selector);
      } catch (error) {
        this.options.logger.error(
          { model: name, err: error },
          `registry sync of ${name} failed: ${(error as Error).message}`,
        );
      }
      await this.recordReplica(name);
    }
  }

  /** Writes this server's row for the model (host, pid, served version, since, why not) when it changed. */
  private async recordReplica(name: string): Promise<void> {
    const status = this.statuses.get(name);
    if (!status || this.options.recordReplicas === false) return;
    const record = {
      model: name,
      ...this.server,
      target: status.target,
      state: status.state,
      ...(status.servedVersion !== undefined ? { version: status.servedVersion } : {}),
      ...(status.since !== undefined ? { since: status.since } : {}),
      ...(status.failedVersion !== undefined ? { failedVersion: status.failedVersion } : {}),
      ...(status.reason !== undefined ? { reason: status.reason } : {}),
    };
    const key = JSON.stringify(record);
    if (this.recorded.get(name) === key) return;
    try {
      await this.registry.recordReplica(record);
      this.recorded.set(name, key);
    } catch (error) {
      this.options.logger.warn(
        { model: name, err: error },
        `could not record what this server serves in the registry: ${(error as Error).message}`,
      );
    }
  }

  /**
   * Writes a load failure (or a fallback) into the registry's history once per version for this server process,
   * so `caliper models history` says which server could not load which version and why.
   */
  private async recordLoadEvent(
    name: string,
    version: number,
    event: 'load_failed' | 'served_instead',
    detail: { from?: string; to?: string },
  ): Promise<void> {
    const key = `${event}:${name}:${version}`;
    if (this.options.recordReplicas === false || this.loadEvents.has(key)) return;
    this.loadEvents.add(key);
    try {
      await this.registry.recordLoadEvent(
        name,
        version,
        event,
        { ...detail, ...(detail.to ? { to: boundedMessage(detail.to) } : {}) },
        `server:${this.server.host}:${this.server.pid}`,
      );
    } catch (error) {
      this.options.logger.warn(
        { model: name, err: error },
        `could not record ${event} of version ${version} in the registry: ${(error as Error).message}`,
      );
    }
  }

  private async forgetReplica(name?: string): Promise<void> {
    if (this.options.recordReplicas === false) return;
    try {
      await this.registry.removeReplica(this.server.host, this.server.pid, name);
      if (name === undefined) this.recorded.clear();
      else this.recorded.delete(name);
    } catch {
      // The registry is gone: its rows say when they were last updated.
    }
  }

  private statusFor(name: string, target: string): FollowStatus {
    let status = this.statuses.get(name);
    if (!status) {
      status = { name, target, state: 'loading', swaps: 0, loadFailures: 0 };
      this.statuses.set(name, status);
    }
    status.target = target;
    return status;
  }

  private async syncModel(name: string, selector: VersionSelector | undefined): Promise<void> {
    const served = this.repository.has(name) ? this.repository.get(name) : undefined;
    const target = selector ? formatModelUri({ name, selector }) : `models:/${name} (Production or an alias)`;
    const status = this.statusFor(name, target);
    const keepServing = (reason: string): void => {
      status.reason = served ? `${reason}; version ${served.defaultVersion} keeps serving` : reason;
      status.state = served ? 'ready' : 'unavailable';
    };
    if (!selector) return keepServing(`model "${name}" has no Production version and no alias`);

    let primary: RegisteredVersion;
    try {
      primary = await this.registry.resolve(name, selector);
    } catch (error) {
      return keepServing(toCaliperError(error).message);
    }
    const traffic = await this.registry.traffic(name);
    const resolveQuietly = async (s: VersionSelector): Promise<RegisteredVersion | undefined> => {
      try {
        return await this.registry.resolve(name, s);
      } catch {
        return undefined;
      }
    };
    const canary = traffic.canary ? await resolveQuietly(traffic.canary.target) : undefined;
    const shadow = traffic.shadow ? await resolveQuietly(traffic.shadow.target) : undefined;

    // Load what is wanted and not yet served (the primary first: nothing switches if it fails).
    const loaded = new Map<number, ModelVersion>();
    const have = (v: number): ModelVersion | undefined => loaded.get(v) ?? served?.versions.get(v);
    const load = async (record: RegisteredVersion, role: string): Promise<ModelVersion | undefined> => {
      const existing = have(record.version);
      if (existing) return existing;
      if (!served) status.state = 'loading';
      try {
        const modelPath = await this.registry.artifactPath(record);
        const version = await ModelVersion.load(
          await this.registry.servedConfigOf(record),
          record.version,
          modelPath,
          this.options.schedulerFactory,
        );
        loaded.set(record.version, version);
        for (const notice of version.loadNotices)
          this.options.logger.warn({ model: name, version: record.version }, notice);
        return version;
      } catch (error) {
        const message = toCaliperError(error).message;
        status.loadFailures++;
        this.options.logger.error(
          { model: name, version: record.version, role, err: error },
          `models:/${name}/${record.version} failed to load as ${role}: ${message}`,
        );
        if (role === 'primary') {
          status.failedVersion = record.version;
          status.state = served ? 'ready' : 'failed';
          status.reason = `version ${record.version} failed to load: ${message}${served ? `; version ${served.defaultVersion} keeps serving` : ''}`;
        }
        await this.recordLoadEvent(name, record.version, 'load_failed', { to: `${role}: ${message}` });
        return undefined;
      }
    };

    let primaryVersion = await load(primary, 'primary');
    let fallback: { failed: number; reason: string } | undefined;
    if (!primaryVersion && !served && this.fallingBack) {
      // Nothing served yet (a restart): the newest version of the stage's (or alias's) lineage that loads answers.
      const failedReason = status.reason ?? `version ${primary.version} failed to load`;
      for (const candidate of await this.registry.lineage(name, selector, primary.version)) {
        primaryVersion = await load(candidate, 'fallback');
        if (!primaryVersion) continue;
        fallback = { failed: primary.version, reason: failedReason };
        this.options.logger.warn(
          { model: name, version: candidate.version, failedVersion: primary.version },
          `${target} is version ${primary.version}, which does not load; serving version ${candidate.version} (${candidate.stage}) instead: ${failedReason}`,
        );
        await this.recordLoadEvent(name, candidate.version, 'served_instead', {
          from: `models:/${name}/${primary.version}`,
          to: `${target} (version ${primary.version} does not load)`,
        });
        break;
      }
      if (!primaryVersion) {
        status.state = 'failed';
        status.failedVersion = primary.version;
        status.reason = failedReason;
      }
    }
    if (!primaryVersion) {
      await Promise.all([...loaded.values()].map((v) => v.unload()));
      return;
    }
    const canaryVersion = canary && canary.version !== primary.version ? await load(canary, 'canary') : undefined;
    const shadowVersion = shadow && shadow.version !== primary.version ? await load(shadow, 'shadow') : undefined;

    const policy: TrafficPolicy = {};
    if (canaryVersion && traffic.canary) policy.canary = { version: canaryVersion, weight: traffic.canary.weight };
    if (shadowVersion && traffic.shadow) {
      const previous = served?.traffic?.shadow;
      policy.shadow = {
        version: shadowVersion,
        fraction: traffic.shadow.fraction,
        stats: previous?.version === shadowVersion ? previous.stats : emptyShadowStats(),
      };
    }
    const wanted = new Set(
      [primaryVersion, canaryVersion, shadowVersion].filter((v): v is ModelVersion => v !== undefined),
    );

    // The switch: one synchronous step in the repository, so a request sees either the old set or the new one.
    const previousDefault = served?.defaultVersion;
    const retired = this.repository.replace(name, {
      versions: [...wanted],
      defaultVersion: primaryVersion.version,
      traffic: policy,
    });

    // Say what traffic split is applied whenever it changes, and why a configured target is not applied.
    const split = (c?: { version: number; weight: number }, sh?: { version: number; fraction: number }): string =>
      [
        c ? `canary version ${c.version} ${Math.round(c.weight * 1000) / 10}%` : '',
        sh ? `shadow version ${sh.version} ${Math.round(sh.fraction * 1000) / 10}%` : '',
      ]
        .filter(Boolean)
        .join(', ') || 'none';
    const appliedSplit = split(
      policy.canary ? { version: policy.canary.version.version, weight: policy.canary.weight } : undefined,
      policy.shadow ? { version: policy.shadow.version.version, fraction: policy.shadow.fraction } : undefined,
    );
    if (appliedSplit !== split(status.canary, status.shadow)) {
      const skipped = [
        traffic.canary && !policy.canary
          ? `canary ${formatSelector(traffic.canary.target)} not applied (${canary ? (canary.version === primary.version ? 'it is the served version' : 'it failed to load') : 'no such version'})`
          : '',
        traffic.shadow && !policy.shadow
          ? `shadow ${formatSelector(traffic.shadow.target)} not applied (${shadow ? (shadow.version === primary.version ? 'it is the served version' : 'it failed to load') : 'no such version'})`
          : '',
      ].filter(Boolean);
      this.options.logger.info(
        { model: name, traffic: appliedSplit },
        `model ${name} traffic: ${appliedSplit}${skipped.length ? `; ${skipped.join('; ')}` : ''}`,
      );
    }

    status.state = 'ready';
    if (status.servedVersion !== primaryVersion.version || status.since === undefined)
      status.since = new Date().toISOString();
    status.servedVersion = primaryVersion.version;
    if (fallback) {
      status.failedVersion = fallback.failed;
      status.reason = `${fallback.reason}; version ${primaryVersion.version} serves instead`;
    } else {
      delete status.reason;
      delete status.failedVersion;
    }
    if (policy.canary) status.canary = { version: policy.canary.version.version, weight: policy.canary.weight };
    else delete status.canary;
    if (policy.shadow) status.shadow = { version: policy.shadow.version.version, fraction: policy.shadow.fraction };
    else delete status.shadow;
    if (previousDefault !== primaryVersion.version) {
      if (previousDefault !== undefined) status.swaps++;
      this.options.logger.info(
        { model: name, version: primaryVersion.version, previous: previousDefault },
        `model ${name} now serves version ${primaryVersion.version} (${target})`,
      );
    }
    // Each retired version closes once its last request is answered (its leases released).
    await Promise.all(retired.map((v) => v.retire()));
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.watchRetry) clearTimeout(this.watchRetry);
    await this.stopWatching?.();
    this.listening = false;
    await this.syncing;
    await this.forgetReplica();
  }
}
