import type { FastifyInstance } from 'fastify';
import { describeValue } from '../../config/config-reader.ts';
import { invalidInput } from '../../errors.ts';
import type { RepositoryControl } from '../../protocol/repository-control.ts';
import type { TrafficSettings } from '../../registry/model-registry.ts';
import { checkAlias, parseStage } from '../../registry/model-stage.ts';
import { parseSelector } from '../../registry/model-uri.ts';
import { actorOf, credentialsOf } from '../auth.ts';

const objectBody = (body: unknown): Record<string, unknown> => {
  if (body === undefined || body === null || body === '') return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw invalidInput(`body: expected a JSON object, got ${describeValue(body)}`);
  return body as Record<string, unknown>;
};

function optionalString(o: Record<string, unknown>, field: string): string | undefined {
  const value = o[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string' || value === '')
    throw invalidInput(`${field}: expected a non-empty string, got ${describeValue(value)}`);
  return value;
}

function share(o: Record<string, unknown>, field: string, path: string): number {
  const value = o[field];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1)
    throw invalidInput(`${path}.${field}: expected a fraction from 0 to 1, got ${describeValue(value)}`);
  return value;
}

/** Model control: the admin token only; these routes are registered only when the server has one. */
const ADMIN = { config: { protection: 'admin' } } as const;

/**
 * Triton's model repository extension (index, load, unload), plus status, promote and traffic for a registry, over
 * REST: each route parses its JSON body and calls the protocol-neutral RepositoryControl (src/protocol), which the
 * gRPC repository RPCs call too. Admin-only: each route declares `protection: 'admin'`, checked on the matched route
 * (src/server/auth.ts).
 */
export function registerRepositoryRoutes(app: FastifyInstance, control: RepositoryControl): void {
  app.post('/v2/repository/index', ADMIN, async (request) => control.index(objectBody(request.body).ready === true));

  app.get<{ Params: { name: string } }>('/v2/repository/models/:name/status', ADMIN, async (request) =>
    control.status(request.params.name),
  );

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/load', ADMIN, async (request) => {
    const parameters = objectBody(objectBody(request.body).parameters);
    return control.load(request.params.name, optionalString(parameters, 'target'));
  });

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/unload', ADMIN, async (request) =>
    control.unload(request.params.name),
  );

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/promote', ADMIN, async (request) => {
    control.requireRegistry();
    const body = objectBody(request.body);
    const version = body.version;
    if (typeof version !== 'number' || !Number.isInteger(version) || version < 1)
      throw invalidInput(`version: expected a version number from 1, got ${describeValue(version)}`);
    const stage = optionalString(body, 'stage');
    const alias = optionalString(body, 'alias');
    if ((stage === undefined) === (alias === undefined))
      throw invalidInput('body: expected exactly one of "stage" or "alias"');
    const archiveExisting = body.archive_existing === undefined ? false : body.archive_existing;
    if (typeof archiveExisting !== 'boolean')
      throw invalidInput(`archive_existing: expected true or false, got ${describeValue(archiveExisting)}`);
    return control.promote(
      request.params.name,
      {
        version,
        ...(stage !== undefined ? { stage: parseStage(stage) } : { alias: checkAlias(alias!) }),
        archiveExisting,
      },
      actorOf(credentialsOf(request.headers)),
    );
  });

  app.post<{ Params: { name: string } }>('/v2/repository/models/:name/traffic', ADMIN, async (request) => {
    control.requireRegistry();
    const { name } = request.params;
    const body = objectBody(request.body);
    const settings: TrafficSettings = {};
    if (body.canary !== undefined && body.canary !== null) {
      const canary = objectBody(body.canary);
      settings.canary = {
        target: parseSelector(name, optionalString(canary, 'target') ?? invalidTarget('canary')),
        weight: share(canary, 'weight', 'canary'),
      };
    }
    if (body.shadow !== undefined && body.shadow !== null) {
      const shadow = objectBody(body.shadow);
      settings.shadow = {
        target: parseSelector(name, optionalString(shadow, 'target') ?? invalidTarget('shadow')),
        fraction: share(shadow, 'fraction', 'shadow'),
      };
    }
    return control.traffic(name, settings, actorOf(credentialsOf(request.headers)));
  });
}

function invalidTarget(field: string): never {
  throw invalidInput(`${field}.target: expected a version, stage, @alias or "latest"`);
}
