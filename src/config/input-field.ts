/** One declared request field of model.yaml `inputs` (also the shape of a looked-up feature): name, type and bounds. */

export type FieldType = 'number' | 'integer' | 'string' | 'boolean' | 'array';

export interface InputFieldSpec {
  name: string;
  type: FieldType;
  required: boolean;
  description?: string;
  minimum?: number;
  maximum?: number;
  enum?: string[];
  /** For arrays: element type, and either an exact length or bounds on a variable length. */
  items?: 'number' | 'integer';
  length?: number;
  minLength?: number;
  maxLength?: number;
  default?: number | string | boolean;
}
