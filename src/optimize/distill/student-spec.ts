import { DistillError } from './distill-error.ts';

/**
 * A student architecture, parsed from the CLI's `--student`:
 *   mlp:256,128     dense layers of 256 and 128 units (ReLU), then a dense layer to the classes
 *   cnn:8,16        3×3 convolutions of 8 and 16 channels, each followed by ReLU and 2×2 max-pooling,
 *   cnn:8,16/64     … then dense hidden layers (here one of 64 units) before the class layer
 */
export type StudentSpec = { kind: 'mlp'; hidden: number[] } | { kind: 'cnn'; channels: number[]; hidden: number[] };

const EXPECTED =
  'expected mlp:W1,W2,… (hidden widths) or cnn:C1,C2,…[/W1,…] (conv channels, then optional dense widths), e.g. mlp:256,128 or cnn:8,16/64';

function widths(text: string, what: string, spec: string, allowEmpty: boolean): number[] {
  if (text.trim() === '') {
    if (allowEmpty) return [];
    throw new DistillError('CALIPER_DISTILL_STUDENT_SPEC', `student "${spec}" names no ${what}: ${EXPECTED}`);
  }
  return text.split(',').map((part) => {
    const n = Number(part.trim());
    if (!Number.isInteger(n) || n < 1 || n > 65536) {
      throw new DistillError(
        'CALIPER_DISTILL_STUDENT_SPEC',
        `student "${spec}": ${what} must be integers from 1 to 65536, got "${part.trim()}"`,
      );
    }
    return n;
  });
}

export function parseStudentSpec(spec: string): StudentSpec {
  const match = /^\s*(mlp|cnn)\s*:(.*)$/i.exec(spec);
  if (!match) throw new DistillError('CALIPER_DISTILL_STUDENT_SPEC', `unknown student "${spec}": ${EXPECTED}`);
  const kind = match[1]!.toLowerCase();
  const body = match[2]!;
  if (kind === 'mlp') {
    if (body.includes('/'))
      throw new DistillError(
        'CALIPER_DISTILL_STUDENT_SPEC',
        `student "${spec}": "/" only separates conv channels from dense widths in a cnn student; ${EXPECTED}`,
      );
    return { kind: 'mlp', hidden: widths(body, 'hidden widths', spec, true) };
  }
  const parts = body.split('/');
  if (parts.length > 2)
    throw new DistillError('CALIPER_DISTILL_STUDENT_SPEC', `student "${spec}" has more than one "/": ${EXPECTED}`);
  return {
    kind: 'cnn',
    channels: widths(parts[0]!, 'conv channels', spec, false),
    hidden: widths(parts[1] ?? '', 'dense widths', spec, true),
  };
}

export function formatStudentSpec(spec: StudentSpec): string {
  return spec.kind === 'mlp'
    ? `mlp:${spec.hidden.join(',')}`
    : `cnn:${spec.channels.join(',')}${spec.hidden.length ? `/${spec.hidden.join(',')}` : ''}`;
}
