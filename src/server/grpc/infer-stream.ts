import type { ServerDuplexStream } from '@grpc/grpc-js';
import { boundedMessage, invalidInput, toCaliperError } from '../../errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type {
  InferParameters,
  ModelInferRequest,
  ModelInferResponse,
  RequestDecoder,
} from '../../protocol/service-definition.ts';
import type { AnyCall } from './call-metadata.ts';

const EMPTY_FINAL_RESPONSE = 'triton_enable_empty_final_response';
const FINAL_RESPONSE = 'triton_final_response';

/** Whether a stream request asks for Triton's final-response flag and empty final response (a bool_param, as Triton checks). */
function emptyFinalResponseAsked(request: ModelInferRequest): boolean {
  const parameter = request.parameters?.[EMPTY_FINAL_RESPONSE];
  if (parameter === undefined) return false;
  if (parameter.parameter_choice !== undefined && parameter.parameter_choice !== 'bool_param') {
    throw invalidInput(`parameters.${EMPTY_FINAL_RESPONSE}: expected a bool_param, got ${parameter.parameter_choice}`);
  }
  return parameter.bool_param === true;
}

/**
 * ModelStreamInfer, the bidirectional stream (the call already authorized): each request decoded with `decode`, run
 * by `infer` and answered as it completes (in any order, matched by id); errors travel in error_message. A request
 * with Triton's `triton_enable_empty_final_response: true` is answered as a decoupled Triton model answers it: its
 * response flagged `triton_final_response: false`, then an empty response (same id, model and version) flagged
 * `triton_final_response: true`; an error is itself the final response. The stream ends once the client has ended
 * its side and every request is answered.
 */
export function serveInferStream(
  call: ServerDuplexStream<Buffer, unknown>,
  decode: RequestDecoder,
  infer: (request: ModelInferRequest, call: AnyCall) => Promise<ModelInferResponse>,
  logger: Logger,
): void {
  let pending = 0;
  let ended = false;
  const finish = (): void => {
    if (ended && pending === 0) call.end();
  };
  const answer = (...messages: unknown[]): void => {
    pending--;
    for (const message of messages) if (!call.cancelled && !call.destroyed) call.write(message);
    finish();
  };
  call.on('data', (message: Buffer) => {
    pending++;
    let request: ModelInferRequest;
    let finalFlag: boolean;
    try {
      request = decode(message) as ModelInferRequest;
    } catch (error) {
      answer({ error_message: boundedMessage(`malformed ModelInferRequest protobuf: ${(error as Error).message}`) });
      return;
    }
    const head = { model_name: request.model_name, model_version: request.model_version ?? '', id: request.id ?? '' };
    try {
      finalFlag = emptyFinalResponseAsked(request);
    } catch (error) {
      answer({
        error_message: boundedMessage(toCaliperError(error).message),
        infer_response: { ...head, outputs: [], raw_output_contents: [] },
      });
      return;
    }
    const flag = (final: boolean): { parameters?: InferParameters } =>
      finalFlag ? { parameters: { [FINAL_RESPONSE]: { bool_param: final } } } : {};
    infer(request, call).then(
      (response) => {
        if (!finalFlag) answer({ error_message: '', infer_response: response });
        else
          answer(
            { error_message: '', infer_response: { ...response, ...flag(false) } },
            { error_message: '', infer_response: { ...head, outputs: [], raw_output_contents: [], ...flag(true) } },
          );
      },
      (error: unknown) => {
        const failure = toCaliperError(error);
        if (failure.httpStatus >= 500 && failure.code === 'CALIPER_INTERNAL')
          logger.error({ err: error }, failure.message);
        answer({
          error_message: boundedMessage(failure.message),
          infer_response: { ...head, outputs: [], raw_output_contents: [], ...flag(true) },
        });
      },
    );
  });
  call.on('end', () => {
    ended = true;
    finish();
  });
  call.on('error', () => {
    ended = true;
  });
}
