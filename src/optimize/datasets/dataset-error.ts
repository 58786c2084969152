import { CaliperError } from '../../errors.ts';

/** A data set that cannot be read or does not fit the model (CALIPER_DATASET_INVALID); the message names what was expected. */
export class DatasetError extends CaliperError {
  constructor(message: string) {
    super('CALIPER_DATASET_INVALID', message);
    this.name = 'DatasetError';
  }
}
