import type { InferenceRpcName } from '../../protocol/service-definition.ts';
import { authorize, credentialsOf, type AuthSettings, type Protection } from '../auth.ts';
import { callHeaders, type AnyCall } from './call-metadata.ts';

/**
 * Who may call each RPC, as the HTTP routes declare theirs: the repository RPCs need the admin token, inference
 * the API keys (when set), metadata and statistics are operations, health is open. Typed over every RPC, so a
 * new one cannot be served without a declaration.
 */
export const RPC_PROTECTION: { readonly [N in InferenceRpcName]: Protection } = {
  ServerLive: 'open',
  ServerReady: 'open',
  ModelReady: 'open',
  ServerMetadata: 'operations',
  ModelMetadata: 'operations',
  ModelConfig: 'operations',
  ModelStatistics: 'operations',
  ModelInfer: 'inference',
  ModelStreamInfer: 'inference',
  RepositoryIndex: 'admin',
  RepositoryModelLoad: 'admin',
  RepositoryModelUnload: 'admin',
};

/**
 * The HTTP auth policy applied to a gRPC call of `rpc` (the route already matched): its metadata `authorization` /
 * `x-api-key` stand for the headers. Throws CALIPER_UNAUTHENTICATED / CALIPER_FORBIDDEN as over HTTP; an RPC
 * without a declaration is refused.
 */
export function authorizeCall(settings: AuthSettings | undefined, rpc: string, call: AnyCall): void {
  authorize(
    settings ?? {},
    (RPC_PROTECTION as Record<string, Protection | undefined>)[rpc],
    credentialsOf(callHeaders(call)),
  );
}
